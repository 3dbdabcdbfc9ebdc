"""Reports that stay fast, and credit notifications: the daily usage rollups and the runs
index (kept in the same transaction as each entry / usage record; filled by 0010), the index
the rollup's call counting looks up, notification rules, and the outbox of alerts (its key
UNIQUE: one alert, once).

Revision ID: 0006_notifications
Revises: 0005_web_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_notifications"
down_revision = "0005_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entries_node_call", "entries", ["node_call"])
    op.create_table(
        "usage_daily",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=False),
        sa.Column("node_type", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("test_run", sa.Boolean(), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint(
            "workspace_id", "day", "workflow", "node_type", "member_id", "test_run",
            name="pk_usage_daily",
        ),
    )  # fmt: skip
    op.create_table(
        "usage_models_daily",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("models", sa.String(length=1000), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint(
            "workspace_id", "day", "member_id", "models", name="pk_usage_models_daily"
        ),
    )
    op.create_table(
        "usage_runs",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("workspace_id", "member_id", "flow_run_id", name="pk_usage_runs"),
    )
    op.create_index(
        "ix_usage_runs_started",
        "usage_runs",
        ["workspace_id", "member_id", "started_at", "flow_run_id"],
    )
    op.create_table(
        "notification_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("limit_ucr", sa.BigInteger(), nullable=True),
        sa.Column("factor", sa.Numeric(10, 3), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_rules_workspace", "notification_rules", ["workspace_id"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        "ix_notification_outbox_due", "notification_outbox", ["state", "next_attempt_at"]
    )
    # No backfill here: 0010_rollup_triggers fills every rollup from its rows on the way to head.


def downgrade() -> None:
    op.drop_table("notification_outbox")
    op.drop_table("notification_rules")
    op.drop_table("usage_runs")
    op.drop_table("usage_models_daily")
    op.drop_table("usage_daily")
    op.drop_index("ix_entries_node_call", table_name="entries")
