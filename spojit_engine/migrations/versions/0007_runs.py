"""Incomplete runs: a run stopped part-way for credits, kept so it can resume from the node that
was refused (each resume claimed once).

Revision ID: 0007_runs
Revises: 0007b_estimates
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_runs"
down_revision = "0007b_estimates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incomplete_runs",
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("refused_node", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("needed_ucr", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("resumed_flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("attempts >= 0", name="ck_incomplete_attempts_nonneg"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("flow_run_id"),
    )
    op.create_index("ix_incomplete_workspace_status", "incomplete_runs", ["workspace_id", "status"])
    op.create_index("ix_incomplete_last_run", "incomplete_runs", ["last_flow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_incomplete_last_run", table_name="incomplete_runs")
    op.drop_index("ix_incomplete_workspace_status", table_name="incomplete_runs")
    op.drop_table("incomplete_runs")
