"""Hardening the workflow webhooks' queue:

- ``run_key``: a random key per request, made when it is queued. The flow run's idempotency key
  is built from it (``spojit-hook:{run_key}:{attempt}``), not from the row id, so two ledgers
  sharing one Prefect server, or a ledger restored from a backup or recreated (whose ids start
  over), never present Prefect with another request's key. Rows queued before this revision keep
  their old key (``spojit-hook:{id}:{attempt}``): a start that was cut off retries as it began.
- ``failures`` and ``error``: a request that fails to start for good becomes a dead letter
  (state ``dead``, with the reason) and no longer holds up the requests queued behind it.

Revision ID: 0012_hardening
Revises: 0011_lean_debit
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_hardening"
down_revision = "0011_lean_debit"
branch_labels = None
depends_on = None


STATE_CHECK = "ck_webhook_queue_state"


def upgrade() -> None:
    with op.batch_alter_table("webhook_queue") as batch:
        batch.add_column(sa.Column("run_key", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.drop_constraint(STATE_CHECK, type_="check")
        batch.create_check_constraint(STATE_CHECK, "state IN ('queued', 'started', 'dead')")


def downgrade() -> None:
    op.execute("DELETE FROM webhook_queue WHERE state = 'dead'")
    with op.batch_alter_table("webhook_queue") as batch:
        batch.drop_constraint(STATE_CHECK, type_="check")
        batch.create_check_constraint(STATE_CHECK, "state IN ('queued', 'started')")
        batch.drop_column("error")
        batch.drop_column("failures")
        batch.drop_column("run_key")
