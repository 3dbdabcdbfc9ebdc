"""The exact credit ledger: workspaces (the account row), members, grants, holds, entries, postings.

Times are naive UTC ``DateTime`` columns (the models read them back UTC-aware).

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-28 14:37:16.442883
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=False),
        sa.Column("pending_plan_id", sa.String(length=32), nullable=True),
        sa.Column("anchor_at", sa.DateTime(), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("held_ucr", sa.BigInteger(), nullable=False),
        sa.Column("overdraft_ucr", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("held_ucr >= 0", name="ck_workspaces_held_nonneg"),
        sa.CheckConstraint("overdraft_ucr >= 0", name="ck_workspaces_overdraft_nonneg"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_ucr", sa.BigInteger(), nullable=False),
        sa.Column("remaining_ucr", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount_ucr > 0", name="ck_grants_amount_positive"),
        sa.CheckConstraint(
            "remaining_ucr >= 0 AND remaining_ucr <= amount_ucr", name="ck_grants_remaining_range"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        "ix_grants_workspace_remaining", "grants", ["workspace_id", "remaining_ucr"], unique=False
    )

    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("amount_ucr", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("settled_ucr", sa.BigInteger(), nullable=True),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("node_type", sa.String(length=64), nullable=True),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("test_run", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount_ucr > 0", name="ck_holds_amount_positive"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_holds_state_expires", "holds", ["state", "expires_at"], unique=False)

    op.create_table(
        "members",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("workspace_id", "email", name="uq_members_workspace_email"),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_ucr", sa.BigInteger(), nullable=False),
        sa.Column("held_ucr", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("hold_id", sa.Integer(), nullable=True),
        sa.Column("workflow", sa.String(length=128), nullable=True),
        sa.Column("node_type", sa.String(length=64), nullable=True),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("test_run", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"],
            ["holds.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        "ix_entries_workspace_created", "entries", ["workspace_id", "created_at"], unique=False
    )

    op.create_table(
        "postings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("amount_ucr", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["entries.id"],
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_postings_entry", "postings", ["entry_id"], unique=False)
    op.create_index("ix_postings_grant", "postings", ["grant_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_postings_grant", table_name="postings")
    op.drop_index("ix_postings_entry", table_name="postings")

    op.drop_table("postings")
    op.drop_index("ix_entries_workspace_created", table_name="entries")

    op.drop_table("entries")
    op.drop_table("members")
    op.drop_index("ix_holds_state_expires", table_name="holds")

    op.drop_table("holds")
    op.drop_index("ix_grants_workspace_remaining", table_name="grants")

    op.drop_table("grants")
    op.drop_table("workspaces")
