"""Usage records: one row per metered node call (tokens, models, credits, run ids); entries and
holds name the node call they belong to, so reports count calls, not postings.

Revision ID: 0002_usage_records
Revises: 0001_ledger
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_usage_records"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("task_run_id", sa.String(length=36), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node_name", sa.String(length=128), nullable=False),
        sa.Column("node_type", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("tokens_cached", sa.BigInteger(), nullable=False),
        sa.Column("llm_calls", sa.Integer(), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("test_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_usage_workspace_created", "usage_records", ["workspace_id", "created_at"])
    op.create_index("ix_usage_flow_run", "usage_records", ["flow_run_id"])
    for table in ("entries", "holds"):
        op.add_column(table, sa.Column("node_call", sa.String(length=200), nullable=True))


def downgrade() -> None:
    for table in ("entries", "holds"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("node_call")
    op.drop_index("ix_usage_flow_run", table_name="usage_records")
    op.drop_index("ix_usage_workspace_created", table_name="usage_records")
    op.drop_table("usage_records")
