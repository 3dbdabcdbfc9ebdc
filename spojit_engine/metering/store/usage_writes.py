"""Usage records written inside the ledger transaction that bills them, as driver SQL.

A node call's usage record rides in the transaction of its first charge (its base debit, or the
batch that commits it), and an LLM call's tokens ride in the transaction of its settle, so a node
call costs no transaction of its own for its record. The columns are ``UsageRow``'s fields, so a
field added there (and to the table) is written here with no change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from spojit_engine.metering.store.statements import Statements, statements_for
from spojit_engine.metering.store.usage import UsageRow

_COLUMNS = tuple(f.name for f in fields(UsageRow))
_INSERT = (
    f"INSERT INTO usage_records ({', '.join(_COLUMNS)}) VALUES"
    f" ({', '.join(':' + c for c in _COLUMNS)}) ON CONFLICT (key) DO NOTHING"
)
# What a node call's record can still change after it was first written.
_CHANGING = ("models", "tokens_in", "tokens_out", "tokens_cached", "llm_calls", "credits_ucr",
             "status", "error", "tools")  # fmt: skip
_REWRITE = (
    f"UPDATE usage_records SET {', '.join(f'{c} = :{c}' for c in _CHANGING if c in _COLUMNS)}"
    " WHERE key = :key"
)
_ADD_LLM_CALL = (
    "UPDATE usage_records SET tokens_in = tokens_in + :tokens_in, tokens_out = tokens_out +"
    " :tokens_out, tokens_cached = tokens_cached + :tokens_cached, llm_calls = llm_calls + 1,"
    " credits_ucr = credits_ucr + :cost_ucr, models = :models WHERE key = :key"
)


def _params(sql: Statements, row: UsageRow) -> dict[str, Any]:
    values = {c: getattr(row, c) for c in _COLUMNS}  # not astuple: it deep-copies
    for name, value in values.items():
        if isinstance(value, bool):
            values[name] = sql.bool_param(value)
        elif isinstance(value, datetime):
            values[name] = sql.time_param(value)
    return values


def insert_rows(conn: Connection, rows: Sequence[UsageRow]) -> None:
    """Insert records in ``conn``'s transaction; a key already recorded is left as it is."""
    if rows:
        sql = statements_for(conn)
        sql.run_many(conn, _INSERT, [_params(sql, row) for row in rows])


def record_json(row: UsageRow) -> dict[str, Any]:
    """A record as a JSON object named as the table's columns (times as naive UTC text), for
    ``spojit_debit`` to insert with ``jsonb_populate_record``."""
    values = {c: getattr(row, c) for c in _COLUMNS}  # not astuple: it deep-copies
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return values


def rewrite_row(conn: Connection, row: UsageRow) -> None:
    """Set what changed since the record was first written (status, error, tokens…)."""
    sql = statements_for(conn)
    sql.run_text(conn, _REWRITE, _params(sql, row))


def add_llm_call(
    conn: Connection,
    key: str,
    *,
    tokens_in: int,
    tokens_out: int,
    tokens_cached: int,
    cost_ucr: int,
    models: str | None,
) -> None:
    """Count one settled LLM call on an existing record (in the settle's transaction)."""
    params = {"key": key, "tokens_in": tokens_in, "tokens_out": tokens_out,
              "tokens_cached": tokens_cached, "cost_ucr": cost_ucr, "models": models}  # fmt: skip
    statements_for(conn).run_text(conn, _ADD_LLM_CALL, params)
