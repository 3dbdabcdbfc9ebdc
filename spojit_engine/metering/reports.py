"""Read side of the ledger: the usage card, the grants and the breakdown (µcr, plain records)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from spojit_engine.errors import InvalidInput, UnknownWorkspace
from spojit_engine.metering import schema
from spojit_engine.metering.burn import Block
from spojit_engine.metering.card import AccountRow, BalanceRecord, balance_of
from spojit_engine.metering.records import USAGE_KINDS, GrantRecord

BREAKDOWN_DIMENSIONS = ("workflow", "node_type", "member", "test_run")


@dataclass(frozen=True, slots=True)
class BreakdownRecord:
    dimensions: dict[str, object]
    credits_ucr: int
    calls: int


def read_balance(conn: Connection, workspace_id: str, now: datetime) -> BalanceRecord:
    """The usage card. ``remaining`` = spendable grants - held - overdraft (what can still run)."""
    w = schema.workspaces.c
    account = conn.execute(select(schema.workspaces).where(w.id == workspace_id)).one_or_none()
    if account is None:
        raise UnknownWorkspace(workspace_id)
    g = schema.grants.c
    rows = conn.execute(
        select(g.id, g.priority, g.effective_at, g.expires_at, g.remaining_ucr, g.kind).where(
            g.workspace_id == workspace_id, g.remaining_ucr > 0
        )
    ).all()
    e = schema.entries.c
    consumed = conn.execute(
        select(func.coalesce(-func.sum(e.amount_ucr), 0)).where(
            e.workspace_id == workspace_id,
            e.kind.in_(USAGE_KINDS),
            e.created_at >= account.period_start,
        )
    ).scalar_one()
    row = AccountRow(workspace_id, account.name, account.plan_id, account.pending_plan_id,
                     account.period_start, account.period_end, account.held_ucr,
                     account.overdraft_ucr)  # fmt: skip
    return balance_of(row, ((Block(*r[:5]), r.kind) for r in rows), int(consumed), now)


def read_grants(conn: Connection, workspace_id: str) -> list[GrantRecord]:
    """Every credit block the workspace ever had, oldest first."""
    g = schema.grants.c
    rows = conn.execute(
        select(
            g.id,
            g.workspace_id,
            g.key,
            g.kind,
            g.amount_ucr,
            g.remaining_ucr,
            g.priority,
            g.effective_at,
            g.expires_at,
        )
        .where(g.workspace_id == workspace_id)
        .order_by(g.id)
    )
    return [GrantRecord(*row) for row in rows]


def read_breakdown(
    conn: Connection,
    workspace_id: str,
    *,
    by: Sequence[str],
    since: datetime,
    member_id: str | None = None,
) -> list[BreakdownRecord]:
    """Credits and calls since ``since``, grouped by ``by`` and always split test vs live."""
    unknown = [d for d in by if d not in BREAKDOWN_DIMENSIONS]
    if unknown:
        raise InvalidInput(
            f"Cannot break down by {', '.join(unknown)}; "
            f"choose from {', '.join(BREAKDOWN_DIMENSIONS)}."
        )
    e = schema.entries.c
    column_of = {
        "workflow": e.workflow,
        "node_type": e.node_type,
        "member": e.member_id,
        "test_run": e.test_run,
    }
    dims = list(dict.fromkeys([*by, "test_run"]))
    columns = [column_of[d].label(d) for d in dims]
    query = (
        select(
            *columns,
            func.sum(-e.amount_ucr),
            func.count(func.distinct(func.coalesce(e.node_call, e.key))),
        )
        .where(e.workspace_id == workspace_id, e.kind.in_(USAGE_KINDS), e.created_at >= since)
        .group_by(*columns)
        .order_by(func.sum(e.amount_ucr))
    )
    if member_id is not None:
        query = query.where(e.member_id == member_id)
    return [
        BreakdownRecord(
            dimensions={
                d: (bool(row[i]) if d == "test_run" else row[i]) for i, d in enumerate(dims)
            },
            credits_ucr=int(row[len(dims)]),
            calls=int(row[len(dims) + 1]),
        )
        for row in conn.execute(query)
    ]
