"""Usage records: one row per metered node call, written once (a replayed key writes nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import is_sqlite, read_transaction, write_transaction
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.retry import retry_unavailable


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    workspace_id: str
    workflow: str | None
    flow_run_id: str | None
    task_run_id: str | None
    attempt: int
    node_name: str
    node_type: str
    mode: str | None
    models: str | None
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    llm_calls: int
    credits_ucr: int
    member_id: str | None
    test_run: bool
    status: str
    error: str | None
    created_at: datetime
    run_name: str | None = None  # Prefect's flow run name
    trigger: str | None = None  # schedule, webhook, automation, manual, test (run_context)
    tools: str | None = None  # the tools an Agent-mode call chose, comma-separated, in order


@contextmanager
def usage_transaction(engine: SAEngine, workspace_id: str) -> Iterator[Connection]:
    """A write transaction for usage records outside a ledger operation. On PostgreSQL it takes
    the workspace's row lock first, as every ledger transaction does, so the rollups that the
    database's triggers keep (rollup.py) are written by one transaction of a workspace at a time:
    two never lock the same rollup rows in opposite orders (a deadlock)."""
    with write_transaction(engine) as conn:
        if not is_sqlite(engine):
            w = schema.workspaces.c
            conn.execute(select(w.id).where(w.id == workspace_id).with_for_update())
        yield conn


@retry_unavailable
def record_usage(engine: SAEngine, row: UsageRow) -> bool:
    """Store one node call's record; False when its key was already recorded (a replay)."""
    try:
        with usage_transaction(engine, row.workspace_id) as conn:
            conn.execute(schema.usage_records.insert().values(**asdict(row)))
    except IntegrityError:
        return False
    return True


@retry_unavailable
def mark_status(engine: SAEngine, workspace_id: str, key: str, *, status: str, error: str) -> None:
    """Set a recorded call's status and error while it still reads ``ok`` (a crash found after
    the call was recorded), in a usage transaction: the rollup triggers fire on the update."""
    u = schema.usage_records.c
    with usage_transaction(engine, workspace_id) as conn:
        conn.execute(
            update(schema.usage_records)
            .where(u.key == key, u.status == "ok")
            .values(status=status, error=error)
        )


def read_usage(
    engine: SAEngine,
    *,
    workspace_id: str | None = None,
    flow_run_id: str | None = None,
    member_id: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[UsageRow]:
    """Usage records, newest first, filtered by whatever is given."""
    u = schema.usage_records.c
    query = select(*(getattr(u, name) for name in UsageRow.__dataclass_fields__))
    conditions: list[Any] = []
    if workspace_id is not None:
        conditions.append(u.workspace_id == workspace_id)
    if flow_run_id is not None:
        conditions.append(u.flow_run_id == flow_run_id)
    if member_id is not None:
        conditions.append(u.member_id == member_id)
    if since is not None:
        conditions.append(u.created_at >= since)
    query = query.where(*conditions).order_by(u.id.desc()).limit(limit)
    with read_transaction(engine) as conn:
        return [UsageRow(*row) for row in conn.execute(query)]


def usage_totals(engine: SAEngine, *, flow_run_id: str) -> tuple[int, int]:
    """How many node calls one flow run made, and what they cost in all (µcr)."""
    u = schema.usage_records.c
    query = select(func.count(), func.coalesce(func.sum(u.credits_ucr), 0)).where(
        u.flow_run_id == flow_run_id
    )
    with read_transaction(engine) as conn:
        calls, total = conn.execute(query).one()
    return int(calls), int(total)
