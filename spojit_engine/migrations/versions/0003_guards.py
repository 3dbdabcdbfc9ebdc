"""Guards: which Prefect deployments bill which workspace, what the guard paused and why,
per-workflow webhooks and their queue while a workspace is out of credits, budget caps.

Revision ID: 0003_guards
Revises: 0002_usage_records
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_guards"
down_revision = "0002_usage_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_bindings",
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("deployment_id"),
    )
    op.create_index("ix_bindings_workspace", "deployment_bindings", ["workspace_id"])
    op.create_table(
        "guard_pauses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=False),
        sa.Column("resumed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pauses_workspace_open", "guard_pauses", ["workspace_id", "resumed_at"])
    op.create_table(
        "workflow_hooks",
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("workflow"),
    )
    op.create_table(
        "webhook_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_queue_workflow_state", "webhook_queue", ["workflow", "state", "id"])
    op.create_table(
        "workflow_budgets",
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("max_credits_per_run_ucr", sa.BigInteger(), nullable=True),
        sa.Column("max_credits_per_day_ucr", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("workspace_id", "workflow"),
    )


def downgrade() -> None:
    op.drop_table("workflow_budgets")
    op.drop_index("ix_webhook_queue_workflow_state", table_name="webhook_queue")
    op.drop_table("webhook_queue")
    op.drop_table("workflow_hooks")
    op.drop_index("ix_pauses_workspace_open", table_name="guard_pauses")
    op.drop_table("guard_pauses")
    op.drop_index("ix_bindings_workspace", table_name="deployment_bindings")
    op.drop_table("deployment_bindings")
