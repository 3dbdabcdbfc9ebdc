"""A SQLite debit on a session of its own: the same statements and rules as ``Ledger.debit``,
without SQLAlchemy's connection handling around them.

Why: a metered node's base debit is one write transaction per call. Its statements already run
on the driver (statements.py); what was left was SQLAlchemy's pool checkout, its ``begin``
event, its commit and its reset on return, ≈ 0.3 ms of Python a debit, as much as the
statements. This path keeps its sessions (``OwnSessions``: SQLAlchemy connections detached from
the pool, so the pragmas and connect arguments are the engine's) and sends ``BEGIN IMMEDIATE``
and ``COMMIT`` itself.

It only ever makes the common case faster: a workspace due for maintenance, a debit the
available credits do not cover, or a key already used (the entries' UNIQUE key) rolls back,
having written nothing, and the caller's Python path decides it exactly as before (renews,
refuses, replays). Spend limits are the caller's to check first (``limits_apply``), as for
PostgreSQL's one-call debit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import POOL_SIZE, unavailable_as_error
from spojit_engine.metering.burn import spendable
from spojit_engine.metering.own_sessions import OwnSessions
from spojit_engine.metering.posting import LedgerTx, available_ucr
from spojit_engine.metering.records import EntryRecord, Usage
from spojit_engine.metering.reservations import plan_draw, post_draw
from spojit_engine.metering.statements import statements_for
from spojit_engine.metering.usage import UsageRow
from spojit_engine.metering.usage_writes import insert_rows

SESSIONS_MAX = POOL_SIZE  # this path's own sessions, per engine (one writer at a time anyway)


class SqliteDebit:
    """The debit over sessions of its own (SQLite only)."""

    def __init__(self, engine: SAEngine) -> None:
        self.engine = engine
        self.answered = 0  # debits this path posted (tests and benches read it)
        self.sessions: OwnSessions[Connection] = OwnSessions(
            engine, make=self._open_session, close=lambda conn: conn.close(), most=SESSIONS_MAX
        )

    def debit(
        self,
        workspace_id: str,
        *,
        key: str,
        amount_ucr: int,
        now: datetime,
        usage: Usage,
        run_id: str | None,
        keep_ucr: int,
        records: Sequence[UsageRow],
    ) -> EntryRecord | None:
        """The posted entry, or None when the Python path must decide (nothing was written)."""
        conn = self.sessions.take()
        if conn is None:
            return None
        sql = statements_for(conn)
        lost = True
        try:
            with unavailable_as_error():
                sql.run_text(conn, "BEGIN IMMEDIATE", {})
                try:
                    entry = _post(conn, workspace_id, key=key, amount_ucr=amount_ucr, now=now,
                                  usage=usage, run_id=run_id, keep_ucr=keep_ucr,
                                  records=records)  # fmt: skip
                    if entry is not None:
                        sql.run_text(conn, "COMMIT", {})
                except IntegrityError:  # the key is used: a replay or a conflict
                    entry = None
                finally:
                    if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                        sql.run_text(conn, "ROLLBACK", {})
            lost = False
        finally:
            self.sessions.give_back(conn, keep=not lost)
        if entry is not None:
            self.answered += 1
        return entry

    def _open_session(self) -> Connection:
        conn = self.engine.connect()
        conn.detach()  # ours from now on: closed by us, never pooled
        return conn


def _post(
    conn: Connection,
    workspace_id: str,
    *,
    key: str,
    amount_ucr: int,
    now: datetime,
    usage: Usage,
    run_id: str | None,
    keep_ucr: int,
    records: Sequence[UsageRow],
) -> EntryRecord | None:
    """Inside the open transaction: post the debit, or None when it is not the common case."""
    tx = LedgerTx.open(conn, workspace_id, now)
    if now >= tx.account.next_due_at:
        return None
    draw = plan_draw(tx, run_id, amount_ucr, keep_ucr)
    blocks = spendable(tx.blocks, now)
    if amount_ucr > available_ucr(blocks, tx) + draw.take_ucr:
        return None
    entry = post_draw(tx, blocks, draw, key=key, amount_ucr=amount_ucr, usage=usage)
    insert_rows(conn, records)
    return entry
