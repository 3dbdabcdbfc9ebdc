"""Daily usage rollups: what the breakdown and the timeline read instead of a period's every entry.

- ``usage_daily``: one row per (workspace, UTC day, workflow, node type, member, test run) with
  the credits and calls of the usage entries (debits and settles) posted that day. ``LedgerTx.post``
  upserts it in the same transaction as the entry (statement ``rollup_usage``), so it is never
  behind the ledger. A *call* is counted once, on the day and row of its node call's first usage
  entry (an entry of no node call is a call of its own), which keeps calls additive across days.
- ``usage_models_daily``: per (workspace, day, member, models) the credits and node calls of the
  usage records, upserted in the same transaction as each record (``record_usage``).

Absent dimensions are stored as ``''`` (so the upsert's conflict target matches) and read back as
None. Reads: whole days from the rollups, and the part of a first day that starts mid-day (a
period anchored at 10:23) from the entries themselves, so any ``since`` is exact.
``verify_rollups`` proves both rollups equal the rows they are made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    case,
    cast,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from spojit_engine.errors import LedgerCorrupt
from spojit_engine.metering import schema
from spojit_engine.metering.records import USAGE_KINDS

# Looked up by the rollup upsert (is this entry its node call's first?) and by the edge reads.
Index("ix_entries_node_call", schema.entries.c.node_call)

usage_daily = Table(
    "usage_daily",
    schema.metadata,
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("day", Date, nullable=False),
    Column("workflow", String(schema.NAME_LENGTH_MAX * 2), nullable=False),
    Column("node_type", String(schema.NAME_LENGTH_MAX), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("test_run", Boolean, nullable=False),
    Column("credits_ucr", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "workspace_id", "day", "workflow", "node_type", "member_id", "test_run",
        name="pk_usage_daily",
    ),
)  # fmt: skip

usage_models_daily = Table(
    "usage_models_daily",
    schema.metadata,
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("day", Date, nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("models", String(1000), nullable=False),
    Column("credits_ucr", BigInteger, nullable=False),
    Column("calls", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "workspace_id", "day", "member_id", "models", name="pk_usage_models_daily"
    ),
)

DIMENSIONS = ("workflow", "node_type", "member", "test_run")
_ROLLUP_COLUMN = {"member": "member_id"}


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def first_full_day(since: datetime) -> date:
    """The first UTC day wholly at or after ``since``."""
    day = since.astimezone(UTC).date()
    return day if since == day_start(day) else day + timedelta(days=1)


def _day_of(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The UTC day of a stored (naive UTC) timestamp, as the database computes it."""
    if conn.dialect.name == "sqlite":
        return func.date(column)
    return cast(column, Date)


def _opens_call() -> ColumnElement[int]:
    """1 for an entry that is its node call's first usage entry (or of no node call), else 0:
    the same rule the upsert applies when the entry is posted."""
    e = schema.entries.c
    earlier = schema.entries.alias("earlier")
    p = earlier.c
    later_in_call = exists().where(p.node_call == e.node_call, p.kind.in_(USAGE_KINDS), p.id < e.id)
    return case((e.node_call.is_(None), 1), (later_in_call, 0), else_=1)


def _entry_dimension(name: str) -> ColumnElement[Any]:
    e = schema.entries.c
    column = {"workflow": e.workflow, "node_type": e.node_type, "member": e.member_id}.get(name)
    return e.test_run if column is None else func.coalesce(column, "")


def _as_dimension(name: str, value: Any) -> Any:
    if name == "test_run":
        return bool(value)
    if name == "day":
        return date.fromisoformat(value) if isinstance(value, str) else value
    return value or None


def read_usage_groups(
    conn: Connection,
    workspace_id: str,
    *,
    by: Sequence[str],
    since: datetime,
    member_id: str | None = None,
) -> dict[tuple[Any, ...], list[int]]:
    """{values of ``by``: [credits_ucr, calls]} of the usage since ``since``; ``by`` names
    ``DIMENSIONS`` and ``day``. Whole days come from the rollup, a partial first day from the
    entries."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    full_from = first_full_day(since)

    def add(rows: Any) -> None:
        for row in rows:
            if row[-2] is None:  # an aggregate over no rows
                continue
            key = tuple(_as_dimension(d, v) for d, v in zip(by, row, strict=False))
            total = groups.setdefault(key, [0, 0])
            total[0] += int(row[-2])
            total[1] += int(row[-1])

    r = usage_daily.c
    columns = [getattr(r, _ROLLUP_COLUMN.get(d, d)) for d in by]
    query = select(*columns, func.sum(r.credits_ucr), func.sum(r.calls)).where(
        r.workspace_id == workspace_id, r.day >= full_from
    )
    if member_id is not None:
        query = query.where(r.member_id == member_id)
    add(conn.execute(query.group_by(*columns)))
    if full_from != since.astimezone(UTC).date():
        e = schema.entries.c
        edge = [
            literal(since.astimezone(UTC).date(), Date) if d == "day" else _entry_dimension(d)
            for d in by
        ]
        query = select(*edge, func.sum(-e.amount_ucr), func.sum(_opens_call())).where(
            e.workspace_id == workspace_id,
            e.kind.in_(USAGE_KINDS),
            e.created_at >= since,
            e.created_at < day_start(full_from),
        )
        if member_id is not None:
            query = query.where(e.member_id == member_id)
        add(conn.execute(query.group_by(*[c for c, d in zip(edge, by, strict=True) if d != "day"])))
    return groups


def read_model_days(
    conn: Connection, workspace_id: str, *, since: datetime, member_id: str | None = None
) -> dict[tuple[date, str], int]:
    """{(day, models): credits_ucr} of the usage records since ``since`` (LLM node calls only)."""
    found: dict[tuple[date, str], int] = {}
    full_from = first_full_day(since)
    r = usage_models_daily.c
    query = select(r.day, r.models, func.sum(r.credits_ucr)).where(
        r.workspace_id == workspace_id, r.day >= full_from, r.models != ""
    )
    if member_id is not None:
        query = query.where(r.member_id == member_id)
    rows = list(conn.execute(query.group_by(r.day, r.models)))
    first_day = since.astimezone(UTC).date()
    if full_from != first_day:
        u = schema.usage_records.c
        edge = select(literal(first_day, Date), u.models, func.sum(u.credits_ucr)).where(
            u.workspace_id == workspace_id,
            u.models.is_not(None),
            u.created_at >= since,
            u.created_at < day_start(full_from),
        )
        if member_id is not None:
            edge = edge.where(u.member_id == member_id)
        rows += list(conn.execute(edge.group_by(u.models)))
    for day, models, credits_ucr in rows:
        key = (_as_dimension("day", day), models)
        found[key] = found.get(key, 0) + int(credits_ucr)
    return found


def upsert_model_day(conn: Connection, row: Any) -> None:
    """Add one usage record (a ``UsageRow``) to its day's models rollup, in its transaction."""
    values = {
        "workspace_id": row.workspace_id,
        "day": row.created_at.astimezone(UTC).date(),
        "member_id": row.member_id or "",
        "models": row.models or "",
        "credits_ucr": row.credits_ucr,
        "calls": 1,
    }
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    statement = insert(usage_models_daily).values(**values)
    r = usage_models_daily.c
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[r.workspace_id, r.day, r.member_id, r.models],
            set_={
                "credits_ucr": r.credits_ucr + statement.excluded.credits_ucr,
                "calls": r.calls + statement.excluded.calls,
            },
        )
    )


def expected_usage_daily(conn: Connection, workspace_id: str | None = None) -> Any:
    """``usage_daily`` recomputed from the entries (verify; the migration's backfill)."""
    e = schema.entries.c
    dims = [_entry_dimension(d) for d in DIMENSIONS]
    day = _day_of(conn, e.created_at)
    query = select(
        e.workspace_id, day, *dims, func.sum(-e.amount_ucr), func.sum(_opens_call())
    ).where(e.kind.in_(USAGE_KINDS))
    if workspace_id is not None:
        query = query.where(e.workspace_id == workspace_id)
    return query.group_by(e.workspace_id, day, *dims)


def expected_models_daily(conn: Connection, workspace_id: str | None = None) -> Any:
    """``usage_models_daily`` recomputed from the usage records."""
    u = schema.usage_records.c
    day = _day_of(conn, u.created_at)
    member, models = func.coalesce(u.member_id, ""), func.coalesce(u.models, "")
    query = select(u.workspace_id, day, member, models, func.sum(u.credits_ucr), func.count())
    if workspace_id is not None:
        query = query.where(u.workspace_id == workspace_id)
    return query.group_by(u.workspace_id, day, member, models)


def rebuild_rollups(conn: Connection, workspace_id: str | None = None) -> None:
    """Recompute both rollups from the entries and the usage records (a backfill)."""
    for table, expected in (
        (usage_daily, expected_usage_daily),
        (usage_models_daily, expected_models_daily),
    ):
        delete = table.delete()
        if workspace_id is not None:
            delete = delete.where(table.c.workspace_id == workspace_id)
        conn.execute(delete)
        conn.execute(
            table.insert().from_select([c.name for c in table.c], expected(conn, workspace_id))
        )


def verify_rollups(conn: Connection, workspace_id: str) -> None:
    """Raise ``LedgerCorrupt`` unless both rollups equal what they are made of."""
    for table, expected in (
        (usage_daily, expected_usage_daily),
        (usage_models_daily, expected_models_daily),
    ):
        key_count = len(table.primary_key.columns)
        want = _keyed(conn.execute(expected(conn, workspace_id)), key_count)
        stored = select(*table.c).where(table.c.workspace_id == workspace_id)
        got = _keyed(conn.execute(stored), key_count)
        if got != want:
            wrong = sorted(set(got.items()) ^ set(want.items()), key=repr)[0][0]
            raise LedgerCorrupt(
                f"Workspace {workspace_id} fails {table.name} == its rows at {wrong}: "
                f"rollup {got.get(wrong)}, rows say {want.get(wrong)}."
            )


def _keyed(rows: Any, key_count: int) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """{key columns (normalised): (credits, calls)}, rows of zero credits and calls dropped."""
    found: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for row in rows:
        key = tuple(
            _as_dimension("day", v) if i == 1 else (bool(v) if isinstance(v, bool) else v)
            for i, v in enumerate(row[:key_count])
        )
        found[key] = (int(row[key_count]), int(row[key_count + 1]))
    return found
