"""Daily usage rollups: what the breakdown and the timeline read instead of a period's every entry.

The database keeps them, by triggers on ``entries`` and ``usage_records`` (migration
``0010_rollup_triggers``, each rule written once there for SQLite and PostgreSQL), in the same
transaction as the row, so every write path (``LedgerTx.post``, ``record_usage``, the usage writes
of ``usage_writes``, group commit) keeps them exact. PostgreSQL's one-call ``spojit_debit``
applies the ``usage_daily`` rule to its own entry, rendered from the same rule text, and the
trigger skips that one insert (migration ``0011_lean_debit``).

- ``usage_daily``: one row per (workspace, day, workflow, node type, member, test run) with
  the credits and calls of the usage entries (debits and settles) posted that day. A *call* is
  counted once, on the day and row of its node call's first usage entry (an entry of no node
  call is a call of its own), which keeps calls additive across days.
- ``usage_models_daily``: per (workspace, day, member, models) the credits and node calls of the
  usage records; a record's update (a rewrite, a settled LLM call) moves its credits with it.
- ``usage_runs``: each flow run's first record time, so Executions pages by an index instead of
  grouping every record of the workspace.

A rollup *day* starts at the workspace's reset time of day (its anchor's: midnight UTC unless the
plan started at another time), so a period is always whole days and the card, the breakdown and
the timeline of a period read only rollup rows. A ``since`` inside a day (never the case for a
period) reads that day's part from the entries themselves, so any ``since`` stays exact.
Absent dimensions are stored as ``''`` (so the upsert's conflict target matches) and read back as
None. ``rollup_verify.verify_rollups`` proves every rollup equals the rows it is made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
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
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from spojit_engine.errors import UnknownWorkspace
from spojit_engine.metering.core.days import Days
from spojit_engine.metering.core.records import USAGE_KINDS
from spojit_engine.metering.store import schema

# Looked up by the rollup trigger (is this entry its node call's first?) and by the edge reads.
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

# Each flow run's start, for the Executions page: one row for the run (member_id '') and one for
# each member whose node calls it holds (what a member's own page lists).
usage_runs = Table(
    "usage_runs",
    schema.metadata,
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("member_id", String(32), nullable=False),
    Column("flow_run_id", String(36), nullable=False),
    Column("started_at", schema.UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("workspace_id", "member_id", "flow_run_id", name="pk_usage_runs"),
    Index("ix_usage_runs_started", "workspace_id", "member_id", "started_at", "flow_run_id"),
)

DIMENSIONS = ("workflow", "node_type", "member", "test_run")
_ROLLUP_COLUMN = {"member": "member_id"}


def workspace_days(conn: Connection, workspace_id: str) -> Days:
    w = schema.workspaces.c
    anchor = conn.execute(select(w.anchor_at).where(w.id == workspace_id)).scalar()
    if anchor is None:
        raise UnknownWorkspace(workspace_id)
    return Days.of(anchor)


def opens_call() -> ColumnElement[int]:
    """1 for an entry that is its node call's first usage entry (or of no node call), else 0:
    the same rule the upsert applies when the entry is posted."""
    e = schema.entries.c
    earlier = schema.entries.alias("earlier")
    p = earlier.c
    later_in_call = exists().where(p.node_call == e.node_call, p.kind.in_(USAGE_KINDS), p.id < e.id)
    return case((e.node_call.is_(None), 1), (later_in_call, 0), else_=1)


def entry_dimension(name: str) -> ColumnElement[Any]:
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
    ``DIMENSIONS`` and ``day``. Whole days come from the rollup, a part day from the entries."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    days = workspace_days(conn, workspace_id)
    full_from = days.first_full(since)

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
    if full_from != days.day_of(since):
        e = schema.entries.c
        edge = [literal(days.day_of(since), Date) if d == "day" else entry_dimension(d) for d in by]
        query = select(*edge, func.sum(-e.amount_ucr), func.sum(opens_call())).where(
            e.workspace_id == workspace_id,
            e.kind.in_(USAGE_KINDS),
            e.created_at >= since,
            e.created_at < days.start(full_from),
        )
        if member_id is not None:
            query = query.where(e.member_id == member_id)
        add(conn.execute(query.group_by(*[c for c, d in zip(edge, by, strict=True) if d != "day"])))
    return groups


def read_model_days(
    conn: Connection, workspace_id: str, *, since: date, member_id: str | None = None
) -> dict[tuple[date, str], int]:
    """{(day, models): credits_ucr} of the usage records from day ``since`` on (LLM calls only)."""
    r = usage_models_daily.c
    query = select(r.day, r.models, func.sum(r.credits_ucr)).where(
        r.workspace_id == workspace_id, r.day >= since, r.models != ""
    )
    if member_id is not None:
        query = query.where(r.member_id == member_id)
    return {
        (_as_dimension("day", day), models): int(credits_ucr)
        for day, models, credits_ucr in conn.execute(query.group_by(r.day, r.models))
    }


def workflow_ran(conn: Connection, workspace_id: str, workflow: str) -> bool:
    """Has the workspace ever been charged for ``workflow`` (its rollups keep every day)?"""
    u = usage_daily.c
    found = conn.execute(
        select(u.day).where(u.workspace_id == workspace_id, u.workflow == workflow).limit(1)
    )
    return found.first() is not None
