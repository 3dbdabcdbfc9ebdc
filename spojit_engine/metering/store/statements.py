"""The ledger's hot-path statements as driver SQL, rendered once per dialect.

Why not SQLAlchemy Core here: building, compiling and executing a Core statement costs
100-300 µs of Python, which made a debit five times slower than the same SQL run by the driver
(bench/ledger.py); even ``exec_driver_sql`` adds ~70 µs a statement. So these run on the DBAPI
cursor of the SQLAlchemy connection, inside its transaction. Everything rarer (renewals,
expiries, reports, verify) stays in Core. Times are stored exactly as SQLAlchemy's
``DateTime`` stores them (naive UTC; on SQLite the text ``YYYY-MM-DD HH:MM:SS.ffffff``) so Core
and driver SQL read each other's rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

# What ``posting.lock_account`` reads of a workspace and of each grant, in this order.
ACCOUNT_COLUMNS = (
    "id", "name", "plan_id", "pending_plan_id", "anchor_at", "period_start", "period_end",
    "next_due_at", "credits_ucr", "held_ucr", "overdraft_ucr",
)  # fmt: skip
BLOCK_COLUMNS = ("id", "priority", "effective_at", "expires_at", "remaining_ucr")


def _columns(names: tuple[str, ...], alias: str = "") -> str:
    return ", ".join(alias + name for name in names)


_SQL = {
    "lock_account": (
        f"SELECT {_columns(ACCOUNT_COLUMNS)} FROM workspaces WHERE id = :id{{for_update}}"
    ),
    # A statement of its own, after the lock: under READ COMMITTED a row locked by FOR UPDATE
    # is re-read once the lock is granted, but rows joined to it are not, so grants read in the
    # same statement could be stale (the pair check in move_grant caught exactly that).
    "load_blocks": (
        f"SELECT {_columns(BLOCK_COLUMNS)} FROM grants"
        " WHERE workspace_id = :workspace_id AND remaining_ucr > 0"
    ),
    # SQLite: BEGIN IMMEDIATE already holds the only write lock, so the grants joined to the
    # workspace row cannot be stale, and one statement is two fewer steps of the driver (each
    # step hands the GIL to whichever thread wants it; inside Prefect that is what costs).
    "lock_account_blocks": (
        f"SELECT {_columns(ACCOUNT_COLUMNS, 'w.')}, {_columns(BLOCK_COLUMNS, 'g.')}"
        " FROM workspaces w LEFT JOIN grants g ON g.workspace_id = w.id AND g.remaining_ucr > 0"
        " WHERE w.id = :id"
    ),
    "insert_entry": (
        "{key_registry}INSERT INTO entries (workspace_id, key, kind, amount_ucr, held_ucr,"
        " grant_id, hold_id, workflow, node_type, member_id, test_run, node_call, reason,"
        " created_at) VALUES"
        " (:workspace_id, :key, :kind, :amount_ucr, :held_ucr, :grant_id, :hold_id, :workflow,"
        " :node_type, :member_id, :test_run, :node_call, :reason, :created_at){returning_id}"
    ),
    "insert_posting": (
        "INSERT INTO postings (entry_id, workspace_id, grant_id, amount_ucr) VALUES ({entry_id},"
        " :workspace_id, :grant_id, :amount_ucr)"
    ),
    # The pair check: the move applies only if it keeps remaining within [0, amount].
    "move_grant": (
        "UPDATE grants SET remaining_ucr = remaining_ucr + :delta WHERE id = :id"
        " AND remaining_ucr + :delta >= 0 AND remaining_ucr + :delta <= amount_ucr"
    ),
    "update_balance": (
        "UPDATE workspaces SET credits_ucr = :credits_ucr, held_ucr = :held_ucr,"
        " overdraft_ucr = :overdraft_ucr, next_due_at = :next_due_at WHERE id = :id"
    ),
    "insert_hold": (
        "INSERT INTO holds (workspace_id, key, amount_ucr, state, expires_at, workflow, node_type,"
        " member_id, test_run, node_call, created_at) VALUES (:workspace_id, :key, :amount_ucr,"
        " :state, :expires_at, :workflow, :node_type, :member_id, :test_run, :node_call,"
        " :created_at){returning_id}"
    ),
    "load_hold": (
        "SELECT id, workspace_id, key, amount_ucr, state, expires_at, settled_ucr, workflow,"
        " node_type, member_id, test_run, node_call FROM holds WHERE id = :id"
    ),
    "set_hold_state": "UPDATE holds SET state = :state, settled_ucr = :settled_ucr WHERE id = :id",
    # A run reservation still open in this workspace, and what is left of it (reservations.py).
    "open_reservation": (
        "SELECT id, amount_ucr - COALESCE(settled_ucr, 0) FROM holds"
        " WHERE key = :key AND workspace_id = :workspace_id AND state = 'held'"
    ),
    # The pair check: a draw never takes more than the reservation has open.
    "draw_reservation": (
        "UPDATE holds SET settled_ucr = COALESCE(settled_ucr, 0) + :take WHERE id = :id"
        " AND state = 'held' AND amount_ucr - COALESCE(settled_ucr, 0) >= :take"
    ),
}
_KEY_REGISTRY = (
    "WITH ledger_key AS (INSERT INTO ledger_keys (key, workspace_id) VALUES (:key, :workspace_id)) "
)


class Statements:
    """The statements for one dialect, and its conversions of times and booleans."""

    def __init__(self, dialect_name: str) -> None:
        self.sqlite = dialect_name == "sqlite"
        self._sql = {name: self._render(sql) for name, sql in _SQL.items()}
        self._extra: dict[str, str] = {}  # statements built elsewhere, rendered on first use

    def _render(self, sql: str) -> str:
        sql = sql.replace("{for_update}", "" if self.sqlite else " FOR UPDATE")
        # SQLite hands the new id over as the cursor's lastrowid: no row to fetch, one step less.
        sql = sql.replace("{returning_id}", "" if self.sqlite else " RETURNING id")
        # PostgreSQL pipelines the writes (no round trip per statement), so a posting names
        # the entry inserted just before it by its sequence rather than by a fetched id.
        current_entry = "currval(pg_get_serial_sequence('entries', 'id'))"
        sql = sql.replace("{entry_id}", ":entry_id" if self.sqlite else current_entry)
        # PostgreSQL's entries are partitioned by workspace, their keys UNIQUE per workspace;
        # ledger_keys keeps a key one operation across workspaces (migration 0013).
        sql = sql.replace("{key_registry}", "" if self.sqlite else _KEY_REGISTRY)
        # sqlite3 takes :name; psycopg takes %(name)s.
        return sql if self.sqlite else re.sub(r":(\w+)", r"%(\1)s", sql)

    def run(self, conn: Connection, name: str, params: dict[str, Any]) -> Any:
        """Execute one statement on the DBAPI cursor of ``conn`` (inside its transaction).

        Driver errors are re-raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``…)
        so callers handle one family of exceptions whichever path raised them.
        """
        return self._execute(conn, self._sql[name], params, many=False)

    def run_text(self, conn: Connection, sql: str, params: dict[str, Any]) -> Any:
        """As ``run``, for a statement built elsewhere (written with ``:name`` parameters)."""
        return self._execute(conn, self.rendered(sql), params, many=False)

    def run_many(self, conn: Connection, sql: str, rows: list[dict[str, Any]]) -> Any:
        """One statement for each of ``rows`` (executemany: pipelined on PostgreSQL)."""
        return self._execute(conn, self.rendered(sql), rows, many=True)

    def rendered(self, sql: str) -> str:
        """A statement built elsewhere (``:name`` parameters) in this dialect's form."""
        rendered = self._extra.get(sql)
        if rendered is None:
            rendered = self._extra[sql] = self._render(sql)
        return rendered

    @staticmethod
    def _execute(conn: Connection, sql: str, params: Any, *, many: bool) -> Any:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        dbapi = conn.dialect.loaded_dbapi
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, params, exc, dbapi.Error) from exc
        return cursor

    @contextmanager
    def batch(self, conn: Connection) -> Iterator[None]:
        """Statements run inside are sent together (a psycopg pipeline) on PostgreSQL: results
        and errors arrive at the end of the block. On SQLite (in-process) it changes nothing."""
        if self.sqlite:
            yield
            return
        dbapi_connection: Any = conn.connection.dbapi_connection
        dbapi = conn.dialect.loaded_dbapi
        try:
            with dbapi_connection.pipeline():
                yield
        except dbapi.Error as exc:
            raise DBAPIError.instance("pipelined ledger writes", {}, exc, dbapi.Error) from exc

    def inserted_id(self, cursor: Any) -> int:
        """The id an ``insert_entry`` or ``insert_hold`` just made (on PostgreSQL, once its
        pipeline has ended)."""
        return int(cursor.lastrowid if self.sqlite else cursor.fetchone()[0])

    def time_param(self, moment: datetime | None) -> Any:
        if moment is None:
            return None
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else naive

    def time_value(self, value: Any) -> datetime:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC)

    def optional_time_value(self, value: Any) -> datetime | None:
        return None if value is None else self.time_value(value)

    def bool_param(self, value: bool) -> Any:
        return int(value) if self.sqlite else value


_BY_DIALECT: dict[str, Statements] = {}


def statements_for(conn: Connection) -> Statements:
    """The rendered statements for this connection's dialect (built once per process)."""
    name = conn.dialect.name
    if name not in _BY_DIALECT:
        _BY_DIALECT[name] = Statements(name)
    return _BY_DIALECT[name]
