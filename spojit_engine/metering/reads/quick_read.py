"""The usage card read with the bare driver (``sqlite3`` or psycopg), for commands that only
read: no SQLAlchemy, no migrations, no write lock. Three statements in one read transaction; the
card itself is ``card.balance_of``, the same as the full path's.

It answers only when it can answer exactly. It hands the question back (None) to the full path,
which renews, expires, migrates and explains, when the schema is not at the newest migration,
when the workspace is not found or not unique, or when something is due (a renewal, an expiry:
``now >= next_due_at``) — the card would be stale until that runs.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from spojit_engine.db import SCHEMA_REVISION
from spojit_engine.metering.core.burn import Block
from spojit_engine.metering.core.days import Days
from spojit_engine.metering.core.records import USAGE_KINDS
from spojit_engine.metering.reads.card import AccountRow, BalanceRecord, balance_of

_REVISION = "SELECT version_num FROM alembic_version"
_ACCOUNT = (
    "SELECT id, name, plan_id, pending_plan_id, period_start, period_end, held_ucr,"
    " overdraft_ucr, next_due_at, anchor_at FROM workspaces"
)
_GRANTS = (
    "SELECT id, priority, effective_at, expires_at, remaining_ucr, kind FROM grants"
    " WHERE workspace_id = ? AND remaining_ucr > 0"
)
# The card's consumed as ``reports.read_balance`` reads it (rollup.read_usage_groups): the
# period's whole days from the daily rollup, a part day before its first (never the case unless
# the anchor has a fraction of a second) from the entries.
_CONSUMED = (
    "SELECT (SELECT COALESCE(SUM(credits_ucr), 0) FROM usage_daily WHERE workspace_id = ?"
    " AND day >= ?) + (SELECT COALESCE(-SUM(amount_ucr), 0) FROM entries WHERE workspace_id = ?"
    f" AND kind IN ({', '.join(repr(k) for k in USAGE_KINDS)}) AND created_at >= ?"
    " AND created_at < ?)"
)


def _moment(value: Any) -> datetime:
    """A stored time (SQLite text or a naive datetime, both UTC) as an aware datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


def _connect(database_url: str) -> tuple[Any, str] | None:
    """(a DBAPI connection, its placeholder), or None for a URL this reader does not know."""
    scheme, _, rest = database_url.partition("://")
    if scheme == "sqlite":
        path = Path(rest.removeprefix("/"))
        if not rest.startswith("/") or not path.is_file():
            return None
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True), "?"
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        import psycopg

        return psycopg.connect(f"postgresql://{rest}"), "%s"
    return None


def quick_balance(database_url: str, workspace: str | None, now: datetime) -> BalanceRecord | None:
    """The usage card of ``workspace`` (a name or id; None: the only one), or None (see above)."""
    connected = _connect(database_url)
    if connected is None:
        return None
    conn, mark = connected
    try:
        cursor = conn.cursor()
        cursor.execute(_REVISION)
        if cursor.fetchone() != (SCHEMA_REVISION,):
            return None
        if workspace is None:
            cursor.execute(_ACCOUNT)
        else:
            cursor.execute(f"{_ACCOUNT} WHERE id = {mark} OR name = {mark}", (workspace,) * 2)
        accounts = cursor.fetchall()
        if len(accounts) != 1 or now >= _moment(accounts[0][8]):
            return None
        a = accounts[0]
        cursor.execute(_GRANTS.replace("?", mark), (a[0],))
        grants = [
            (Block(g[0], g[1], _moment(g[2]), None if g[3] is None else _moment(g[3]), g[4]), g[5])
            for g in cursor.fetchall()
        ]
        cursor.execute(_CONSUMED.replace("?", mark), _consumed_params(a[0], a[4], a[9], mark))
        consumed = int(cursor.fetchone()[0])
        row = AccountRow(a[0], a[1], a[2], a[3], _moment(a[4]), _moment(a[5]), a[6], a[7])
        return balance_of(row, grants, consumed, now)
    except (sqlite3.Error, _pg_error()):
        return None  # a table missing, a locked file...: the full path says what is wrong
    finally:
        conn.close()


def _consumed_params(
    workspace_id: str, period_start: Any, anchor_at: Any, mark: str
) -> tuple[Any, ...]:
    """``_CONSUMED``'s parameters, times and days as each driver stores them."""
    days = Days.of(_moment(anchor_at))
    full_from = days.first_full(_moment(period_start))
    full_start = days.start(full_from).replace(tzinfo=None)
    if mark == "?":  # SQLite: text, as SQLAlchemy's Date and DateTime store it
        return (workspace_id, full_from.isoformat(), workspace_id, period_start,
                full_start.strftime("%Y-%m-%d %H:%M:%S.%f"))  # fmt: skip
    return workspace_id, full_from, workspace_id, period_start, full_start


def _pg_error() -> type[Exception]:
    import sys

    psycopg = sys.modules.get("psycopg")
    return psycopg.Error if psycopg is not None else sqlite3.Error
