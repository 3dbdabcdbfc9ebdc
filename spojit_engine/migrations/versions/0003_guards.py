"""Guards: which Prefect deployments bill which workspace, the guard's state per workspace (and
per workflow, for budget caps), which schedules it paused and why, per-workflow webhooks and
their queue while a workspace is out of credits, budget caps and what each run spent of its cap.

Revision ID: 0003_guards
Revises: 0002_usage_records
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_guards"
down_revision = "0002_usage_records"
branch_labels = None
depends_on = None


def _workspace_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"])


def upgrade() -> None:
    op.create_table(
        "deployment_bindings",
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("deployment_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("deployment_id"),
    )
    op.create_index("ix_bindings_workspace", "deployment_bindings", ["workspace_id", "workflow"])
    # One row per (workspace, scope): scope '' is the whole workspace (out of credits), else a
    # workflow (its budget cap). The lease serialises pausing and resuming across processes.
    op.create_table(
        "guard_states",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("needed_ucr", sa.BigInteger(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("until", sa.DateTime(), nullable=True),
        sa.Column("pauses_applied_at", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state IN ('ok', 'exhausted', 'resuming')", name="ck_guard_state"),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("workspace_id", "scope"),
    )
    op.create_table(
        "guard_pauses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("schedule_id", sa.String(length=36), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", sa.DateTime(), nullable=False),
        # Prefect's `updated` of the schedule right after the guard paused it: a later one means
        # a person touched the schedule since, and the guard leaves it alone.
        sa.Column("schedule_updated_at", sa.DateTime(), nullable=True),
        sa.Column("resumed_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_pauses_workspace_open", "guard_pauses", ["workspace_id", "scope", "resumed_at"]
    )
    op.create_index(
        "ix_pauses_schedule_open", "guard_pauses", ["deployment_id", "schedule_id", "resumed_at"]
    )
    op.create_table(
        "workflow_hooks",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("deployment_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "webhook_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hook", sa.String(length=128), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint("state IN ('queued', 'started')", name="ck_webhook_queue_state"),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_queue_hook_state", "webhook_queue", ["hook", "state", "id"])
    op.create_index("ix_webhook_queue_workspace_state", "webhook_queue", ["workspace_id", "state"])
    op.create_table(
        "workflow_budgets",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("max_credits_per_run_ucr", sa.BigInteger(), nullable=True),
        sa.Column("max_credits_per_day_ucr", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "max_credits_per_run_ucr IS NULL OR max_credits_per_run_ucr > 0",
            name="ck_budget_run_positive",
        ),
        sa.CheckConstraint(
            "max_credits_per_day_ucr IS NULL OR max_credits_per_day_ucr > 0",
            name="ck_budget_day_positive",
        ),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("workspace_id", "workflow"),
    )
    # The debits and holds of each flow run of a workflow with a per-run cap, written in the
    # ledger's own transaction: the run's spend is summed from the ledger rows they name.
    op.create_table(
        "guard_run_spends",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _workspace_fk(),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_run_spends_run", "guard_run_spends", ["flow_run_id"])
    op.create_index("ix_run_spends_created", "guard_run_spends", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_spends_created", table_name="guard_run_spends")
    op.drop_index("ix_run_spends_run", table_name="guard_run_spends")
    op.drop_table("guard_run_spends")
    op.drop_table("workflow_budgets")
    op.drop_index("ix_webhook_queue_workspace_state", table_name="webhook_queue")
    op.drop_index("ix_webhook_queue_hook_state", table_name="webhook_queue")
    op.drop_table("webhook_queue")
    op.drop_table("workflow_hooks")
    op.drop_index("ix_pauses_schedule_open", table_name="guard_pauses")
    op.drop_index("ix_pauses_workspace_open", table_name="guard_pauses")
    op.drop_table("guard_pauses")
    op.drop_table("guard_states")
    op.drop_index("ix_bindings_workspace", table_name="deployment_bindings")
    op.drop_table("deployment_bindings")
