"""Grants are indexed by workspace only, so a debit's update of ``remaining_ucr`` is a HOT update.

Every debit moves a grant's ``remaining_ucr``. While that column sat in
``ix_grants_workspace_remaining``, PostgreSQL could never update a grant in place (HOT): each
debit added an index entry, and the burn-order reads (a bitmap scan, which never marks dead
entries) walked every one of them until a VACUUM — with autovacuum off, as on the project's
server, a bench of a few thousand debits per workspace took the scan from two entries to
tens of thousands and tripled the server's CPU per debit. Indexed by ``workspace_id`` alone, the
update is HOT (no index write; the page prunes itself) and the reads filter the few grants a
workspace holds. SQLite gains too: an update no longer rewrites an index entry.

Revision ID: 0011_hot_grants
Revises: 0010_rollup_triggers
"""

from alembic import op

revision = "0011_hot_grants"
down_revision = "0010_rollup_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_grants_workspace_remaining", table_name="grants")
    op.create_index("ix_grants_workspace", "grants", ["workspace_id"])


def downgrade() -> None:
    op.drop_index("ix_grants_workspace", table_name="grants")
    op.create_index(
        "ix_grants_workspace_remaining", "grants", ["workspace_id", "remaining_ucr"], unique=False
    )
