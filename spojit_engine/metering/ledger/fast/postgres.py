"""A PostgreSQL debit in one round trip: ``spojit_debit`` (migrations 0008 and 0011, the same
rules as ``Ledger.debit``) executed as one prepared statement outside any transaction block, so
its transaction (the debit and the call's usage records, passed as JSON) begins and commits on
the server: one message each way.

Client CPU is throughput (eight clients and their backends on two cores), so the call avoids
two costs that buy it nothing: it is sent through libpq itself (``psycopg.pq``: prepared once
per session, parameters as text) instead of a psycopg cursor (≈ 70 µs less a debit, measured),
over sessions of its own instead of the engine's pool, whose checkout and reset cost ≈ 80 µs a
debit (fast_debit.py; when all are busy the debit takes the Python path and the pool). libpq's
blocking call releases the GIL. No BEGIN is sent: the statement is its own transaction.

Whatever the function hands back (SQLSTATE class SP: due for maintenance, a refusal, an unknown
workspace), a key already used (the entries' UNIQUE key: a replay or a conflict, or a key raced in
by another workspace) is answered by the Python path, which decides it exactly as before; so this
path only ever makes the common case faster.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from sqlalchemy.exc import DBAPIError

from spojit_engine.db import unavailable_as_error
from spojit_engine.metering.core.records import EntryRecord
from spojit_engine.metering.ledger.fast.base import DebitRequest, FastDebit
from spojit_engine.metering.ledger.reservations import reservation_key
from spojit_engine.metering.store.usage_writes import record_json

_NAME = b"spojit_debit_call"
_CALL = (
    "SELECT entry_id, held_delta FROM spojit_debit($1::varchar, $2::varchar, $3::bigint,"
    " $4::timestamp, $5::varchar, $6::bigint, $7::varchar, $8::varchar, $9::varchar,"
    " $10::boolean, $11::varchar, $12::jsonb)"
)
# Handed back to the Python path: due, refused, unknown workspace; a key used (unique
# violation); the prepared call gone from the session (which is then dropped).
_PYTHON_DECIDES = frozenset({b"SP001", b"SP003", b"SP004", b"23505", b"26000"})


class PgDebit(FastDebit):
    """The one-call debit (PostgreSQL only); its sessions are psycopg connections, the call
    prepared in each."""

    def debit(self, request: DebitRequest) -> EntryRecord | None:
        r, usage = request, request.usage
        params = (
            r.workspace_id, r.key, str(r.amount_ucr),
            r.now.astimezone(UTC).replace(tzinfo=None).isoformat(),
            None if r.run_id is None else reservation_key(r.run_id),
            str(r.keep_ucr), usage.workflow, usage.node_type, usage.member_id,
            "t" if usage.test_run else "f", usage.node_call,
            json.dumps([record_json(row) for row in r.records]) if r.records else None,
        )  # fmt: skip
        with unavailable_as_error():
            row = self._run(params)
        if row is None:
            return None
        self.answered += 1
        entry_id, held_delta = row
        return EntryRecord(id=entry_id, workspace_id=r.workspace_id, key=r.key, kind="debit",
                           amount_ucr=-r.amount_ucr, held_ucr=held_delta, overdraft_ucr=0,
                           created_at=r.now)  # fmt: skip

    def _run(self, params: tuple[str | None, ...]) -> tuple[int, int] | None:
        """(entry id, held delta), or None for the Python path; the driver's errors come out
        as SQLAlchemy's (a lost or refused connection as ``OperationalError``)."""
        import psycopg
        from psycopg import pq

        try:
            conn = self.sessions.take()
            if conn is None:
                return None
            keep = False
            try:
                pgconn = conn.pgconn
                values = [None if p is None else p.encode(conn.info.encoding) for p in params]
                result = pgconn.exec_prepared(_NAME, values)
                keep = pgconn.status == pq.ConnStatus.OK  # else lost with the server
                if result.status == pq.ExecStatus.TUPLES_OK:
                    return int(result.get_value(0, 0)), int(result.get_value(0, 1))
                state = result.error_field(pq.DiagnosticField.SQLSTATE)
                keep = keep and state != b"26000"
                if state in _PYTHON_DECIDES:
                    return None
                raise _error(pgconn, result)
            finally:
                self.sessions.give_back(conn, keep=keep)
        except psycopg.Error as exc:
            raise DBAPIError.instance(_CALL, params, exc, psycopg.Error) from exc

    def _open_session(self) -> Any:
        """A psycopg connection made by the engine exactly as for its pool, the call prepared."""
        from psycopg import pq

        raw = self.engine.raw_connection()  # the pool raises the driver's own error
        conn: Any = raw.driver_connection
        raw.detach()  # ours from now on: closed by us, never pooled
        prepared = conn.pgconn.prepare(_NAME, _CALL.encode())
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            conn.close()
            raise _error(conn.pgconn, prepared)
        return conn


def _error(pgconn: Any, result: Any) -> Exception:
    """The driver's error for a failed ``result``, as psycopg would raise it: by SQLSTATE, or
    ``OperationalError`` when the connection itself failed."""
    import psycopg
    from psycopg import pq

    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = result.get_error_message()
    if state is None or pgconn.status != pq.ConnStatus.OK:
        return psycopg.OperationalError(message)
    try:
        return psycopg.errors.lookup(state.decode())(message)
    except KeyError:  # ours (class SP) and others psycopg has no class for
        return psycopg.DatabaseError(message)
