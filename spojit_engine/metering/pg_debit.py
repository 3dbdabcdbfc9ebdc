"""A PostgreSQL debit in one round trip: ``spojit_debit`` (migration 0008, the same rules as
``Ledger.debit``) called as one statement in autocommit mode, so its transaction (the debit and
the call's usage records, passed as JSON) begins and commits on the server: one message each way.

Whatever the function hands back (SQLSTATE class SP: due for maintenance, a key already used, a
refusal, an unknown workspace) and a key raced in by another workspace is answered by the Python
path, which decides it exactly as before; so this path only ever makes the common case faster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import DBAPIError

from spojit_engine.db import unavailable_as_error
from spojit_engine.metering.records import EntryRecord, Usage
from spojit_engine.metering.usage import UsageRow
from spojit_engine.metering.usage_writes import record_json

_CALL = (
    "SELECT entry_id, held_delta, reservation_id FROM spojit_debit(%(workspace_id)s, %(key)s,"
    " %(amount_ucr)s, %(now)s, %(reservation_key)s, %(keep_ucr)s, %(workflow)s, %(node_type)s,"
    " %(member_id)s, %(test_run)s, %(node_call)s, %(records)s)"
)
# Handed back to the Python path: due, key used, refused, unknown workspace; unique violation.
_PYTHON_DECIDES = frozenset({"SP001", "SP002", "SP003", "SP004", "23505"})


class PgDebit:
    """The one-call debit over ``engine``'s pool (PostgreSQL only)."""

    def __init__(self, engine: SAEngine) -> None:
        self.engine = engine
        self.answered = 0  # debits this path posted (tests and benches read it)

    def debit(
        self,
        workspace_id: str,
        *,
        key: str,
        amount_ucr: int,
        now: datetime,
        usage: Usage,
        reservation_key: str | None,
        keep_ucr: int,
        records: Sequence[UsageRow],
    ) -> EntryRecord | None:
        """The posted entry, or None when the Python path must decide (nothing was written)."""
        params = {
            "workspace_id": workspace_id, "key": key, "amount_ucr": amount_ucr,
            "now": now.astimezone(UTC).replace(tzinfo=None), "reservation_key": reservation_key,
            "keep_ucr": keep_ucr, "workflow": usage.workflow, "node_type": usage.node_type,
            "member_id": usage.member_id, "test_run": usage.test_run,
            "node_call": usage.node_call,
            "records": json.dumps([record_json(r) for r in records]) if records else None,
        }  # fmt: skip
        with unavailable_as_error():
            row = self._run(params)
        if row is None:
            return None
        self.answered += 1
        entry_id, held_delta, _reservation_id = row
        return EntryRecord(id=int(entry_id), workspace_id=workspace_id, key=key, kind="debit",
                           amount_ucr=-amount_ucr, held_ucr=int(held_delta), overdraft_ucr=0,
                           created_at=now)  # fmt: skip

    def _run(self, params: dict[str, Any]) -> Any:
        dbapi = self.engine.dialect.loaded_dbapi
        try:  # the pool raises the driver's own error when it cannot connect
            raw = self.engine.raw_connection()
        except dbapi.Error as exc:
            raise DBAPIError.instance(_CALL, params, exc, dbapi.Error) from exc
        conn: Any = raw.driver_connection
        try:
            conn.autocommit = True  # client-side: the statement is its own transaction
            return conn.execute(_CALL, params).fetchone()
        except dbapi.Error as exc:
            if getattr(exc, "sqlstate", None) in _PYTHON_DECIDES:
                return None
            raise DBAPIError.instance(_CALL, params, exc, dbapi.Error) from exc
        finally:
            if conn.closed:  # lost with the server: the pool must not hand it out again
                raw.invalidate()
            else:
                conn.autocommit = False
            raw.close()
