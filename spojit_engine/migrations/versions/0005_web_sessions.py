"""Web sign-in and executions: one-time login links and browser sessions (both stored only as
token hashes), and each usage record's Prefect run name and trigger kind.

Revision ID: 0005_web_sessions
Revises: 0004_billing
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_web_sessions"
down_revision = "0004_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=False),
        sa.Column("link_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["login_links.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("link_id"),
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("run_name", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("trigger", sa.String(length=16), nullable=True))
    op.create_index("ix_usage_workspace_run", "usage_records", ["workspace_id", "flow_run_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_workspace_run", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("trigger")
        batch.drop_column("run_name")
    op.drop_table("browser_sessions")
    op.drop_table("login_links")
