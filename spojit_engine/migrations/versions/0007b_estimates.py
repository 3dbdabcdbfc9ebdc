"""Usage records say which tools an Agent-mode call chose (comma-separated, in call order), so the
cost advisor can tell an agent that always picks the same tool to use Direct mode.

Revision ID: 0007b_estimates
Revises: 0006_notifications
"""

import sqlalchemy as sa
from alembic import op

revision = "0007b_estimates"
down_revision = "0006_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("tools", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("tools")
