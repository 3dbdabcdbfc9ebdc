"""A SQLite debit on a session of its own: the same statements and rules as ``Ledger.debit``,
without SQLAlchemy's connection handling around them.

Why: a metered node's base debit is one write transaction per call. Its statements already run
on the driver (statements.py); what was left was SQLAlchemy's pool checkout, its ``begin``
event, its commit and its reset on return, ≈ 0.3 ms of Python a debit, as much as the
statements. This path keeps its sessions (fast_debit.py: SQLAlchemy connections detached from
the pool, so the pragmas and connect arguments are the engine's) and sends ``BEGIN IMMEDIATE``
and ``COMMIT`` itself.

It only ever makes the common case faster: a workspace due for maintenance, a debit the
available credits do not cover, or a key already used (the entries' UNIQUE key) rolls back,
having written nothing, and the caller's Python path decides it exactly as before (renews,
refuses, replays). Spend limits are the caller's to check first (``limits_apply``), as for
PostgreSQL's one-call debit.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import unavailable_as_error
from spojit_engine.metering.core.records import EntryRecord
from spojit_engine.metering.ledger.fast.base import DebitRequest, FastDebit
from spojit_engine.metering.ledger.posting import LedgerTx, spend_budget
from spojit_engine.metering.ledger.reservations import plan_draw, post_draw
from spojit_engine.metering.store.statements import statements_for
from spojit_engine.metering.store.usage_writes import insert_rows


class SqliteDebit(FastDebit):
    """The debit over sessions of its own (SQLite only): SQLAlchemy connections, detached."""

    def debit(self, request: DebitRequest) -> EntryRecord | None:
        conn = self.sessions.take()
        if conn is None:
            return None
        sql = statements_for(conn)
        lost = True
        try:
            with unavailable_as_error():
                sql.run_text(conn, "BEGIN IMMEDIATE", {})
                try:
                    entry = _post(conn, request)
                    if entry is not None:
                        sql.run_text(conn, "COMMIT", {})
                except IntegrityError:  # the key is used: a replay or a conflict
                    entry = None
                finally:
                    if conn.connection.dbapi_connection.in_transaction:
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


def _post(conn: Connection, r: DebitRequest) -> EntryRecord | None:
    """Inside the open transaction: post the debit, or None when it is not the common case."""
    tx = LedgerTx.open(conn, r.workspace_id, r.now)
    if r.now >= tx.account.next_due_at:
        return None
    draw = plan_draw(tx, r.run_id, r.amount_ucr, r.keep_ucr)
    blocks, available = spend_budget(tx, draw.take_ucr)
    if r.amount_ucr > available:
        return None
    entry = post_draw(tx, blocks, draw, key=r.key, amount_ucr=r.amount_ucr, usage=r.usage)
    insert_rows(conn, r.records)
    return entry
