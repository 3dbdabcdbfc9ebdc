"""Members can be removed: ``members.removed_at`` marks a removed member, whose token, sign-in
links and browser sessions are refused from then on. The row stays, so runs, grants and usage
keep naming who they were.

Revision ID: 0014_members
Revises: 0013_partitions
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_members"
down_revision = "0013_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("removed_at")
