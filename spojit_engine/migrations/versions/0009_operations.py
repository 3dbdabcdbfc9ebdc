"""Operations: who granted each credit block and why; top-up orders flagged when the amount paid
was not the price; verified Stripe events refused as malformed (kept for the operator to read).

Revision ID: 0009_operations
Revises: 0008_pg_debit
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_operations"
down_revision = "0008_pg_debit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("granted_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    with op.batch_alter_table("topup_orders") as batch:
        batch.add_column(
            sa.Column("flagged", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "stripe_rejects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stripe_rejects_received", "stripe_rejects", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_stripe_rejects_received", table_name="stripe_rejects")
    op.drop_table("stripe_rejects")
    with op.batch_alter_table("topup_orders") as batch:
        batch.drop_column("flagged")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("reason")
        batch.drop_column("granted_by")
