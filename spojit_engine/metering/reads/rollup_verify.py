"""The rollups recomputed from what they sum (entries, usage records): ``verify`` compares them,
the migration backfills from them. Slow on purpose (every row), never on a request path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Date, Table, func, select, type_coerce

from spojit_engine.errors import LedgerCorrupt
from spojit_engine.metering.core.records import USAGE_KINDS
from spojit_engine.metering.reads.rollup import (
    DIMENSIONS,
    entry_dimension,
    opens_call,
    usage_daily,
    usage_models_daily,
    usage_runs,
    workspace_days,
)
from spojit_engine.metering.store import schema


def _day(conn: Connection, workspace_id: str, column: Any) -> Any:
    return type_coerce(workspace_days(conn, workspace_id).sql(conn, column), Date)


def expected_usage_daily(conn: Connection, workspace_id: str) -> Any:
    """``usage_daily`` of a workspace from its entries."""
    e = schema.entries.c
    dims = [entry_dimension(d) for d in DIMENSIONS]
    day = _day(conn, workspace_id, e.created_at)
    query = select(
        e.workspace_id, day, *dims, func.sum(-e.amount_ucr), func.sum(opens_call())
    ).where(e.workspace_id == workspace_id, e.kind.in_(USAGE_KINDS))
    return query.group_by(e.workspace_id, day, *dims)


def expected_models_daily(conn: Connection, workspace_id: str) -> Any:
    """``usage_models_daily`` of a workspace from its usage records."""
    u = schema.usage_records.c
    day = _day(conn, workspace_id, u.created_at)
    member, models = func.coalesce(u.member_id, ""), func.coalesce(u.models, "")
    query = select(u.workspace_id, day, member, models, func.sum(u.credits_ucr), func.count())
    query = query.where(u.workspace_id == workspace_id)
    return query.group_by(u.workspace_id, day, member, models)


def expected_runs(conn: Connection, workspace_id: str) -> Any:
    """``usage_runs`` of a workspace from its usage records: each run, and each member's part."""
    u = schema.usage_records.c
    started = type_coerce(func.min(u.created_at), schema.UTCDateTime())
    scope = [u.workspace_id == workspace_id, u.flow_run_id.is_not(None)]
    member = func.coalesce(u.member_id, "")
    whole = select(u.workspace_id, type_coerce("", u.member_id.type), u.flow_run_id, started)
    parts = select(u.workspace_id, member, u.flow_run_id, started).where(u.member_id.is_not(None))
    return (
        whole.where(*scope)
        .group_by(u.workspace_id, u.flow_run_id)
        .union_all(parts.where(*scope).group_by(u.workspace_id, member, u.flow_run_id))
    )


_ROLLUPS: tuple[tuple[Table, Callable[[Connection, str], Any]], ...] = (
    (usage_daily, expected_usage_daily),
    (usage_models_daily, expected_models_daily),
    (usage_runs, expected_runs),
)


def rebuild_rollups(conn: Connection, workspace_id: str | None = None) -> None:
    """Recompute every rollup of one workspace (or of all) from its rows (the backfill)."""
    w = schema.workspaces.c
    ids = [workspace_id] if workspace_id else list(conn.execute(select(w.id)).scalars())
    for each in ids:
        for table, expected in _ROLLUPS:
            conn.execute(table.delete().where(table.c.workspace_id == each))
            columns = [c.name for c in table.c]
            conn.execute(table.insert().from_select(columns, expected(conn, each)))


def verify_rollups(conn: Connection, workspace_id: str) -> None:
    """Raise ``LedgerCorrupt`` unless every rollup equals what it is made of."""
    for table, expected in _ROLLUPS:
        keys = len(table.primary_key.columns)
        want = {
            tuple(r[:keys]): tuple(r[keys:]) for r in conn.execute(expected(conn, workspace_id))
        }
        stored = select(*table.c).where(table.c.workspace_id == workspace_id)
        got = {tuple(r[:keys]): tuple(r[keys:]) for r in conn.execute(stored)}
        if got != want:
            wrong = sorted(set(got.items()) ^ set(want.items()), key=repr)[0][0]
            raise LedgerCorrupt(
                f"Workspace {workspace_id} fails {table.name} == its rows at {wrong}: "
                f"rollup {got.get(wrong)}, rows say {want.get(wrong)}."
            )
