"""Read side of the ledger: the usage card, the grants and the breakdown (µcr, plain records)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, select

from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput, UnknownWorkspace
from spojit_engine.metering.core.burn import Block
from spojit_engine.metering.core.records import GrantRecord
from spojit_engine.metering.reads.card import AccountRow, BalanceRecord, balance_of
from spojit_engine.metering.reads.rollup import DIMENSIONS, read_usage_groups
from spojit_engine.metering.store import schema

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger

T = TypeVar("T")

BREAKDOWN_DIMENSIONS = DIMENSIONS


@dataclass(frozen=True, slots=True)
class BreakdownRecord:
    dimensions: dict[str, object]
    credits_ucr: int
    calls: int


def read_fresh(ledger: Ledger, workspace_id: str, read: Callable[[Connection, datetime], T]) -> T:
    """``read(conn, now)`` in a read transaction, which takes no write lock and never waits for
    a debit. Only when the workspace is due (a renewal, a grant or hold expiry: its
    ``next_due_at`` has passed, as this very read sees it) is it brought up to date first,
    under the lock, and read again."""
    now = ledger.clock()
    w = schema.workspaces.c
    with read_transaction(ledger.engine) as conn:
        due_at = conn.execute(select(w.next_due_at).where(w.id == workspace_id)).scalar()
        if due_at is None:
            raise UnknownWorkspace(workspace_id)
        if now < due_at:
            return read(conn, now)
    ledger.bring_up_to_date(workspace_id)
    with read_transaction(ledger.engine) as conn:
        return read(conn, now)


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
    usage = read_usage_groups(conn, workspace_id, by=(), since=account.period_start)
    consumed = usage.get((), [0, 0])[0]
    row = AccountRow(workspace_id, account.name, account.plan_id, account.pending_plan_id,
                     account.period_start, account.period_end, account.held_ucr,
                     account.overdraft_ucr)  # fmt: skip
    return balance_of(row, ((Block(*r[:5]), r.kind) for r in rows), int(consumed), now)


def read_grants(conn: Connection, workspace_id: str) -> list[GrantRecord]:
    """Every credit block the workspace ever had, oldest first."""
    g = schema.grants.c
    query = select(*schema.GRANT_RECORD_COLUMNS).where(g.workspace_id == workspace_id)
    rows = conn.execute(query.order_by(g.id))
    return [GrantRecord(**row._mapping) for row in rows]


def read_breakdown(
    conn: Connection,
    workspace_id: str,
    *,
    by: Sequence[str],
    since: datetime,
    member_id: str | None = None,
) -> list[BreakdownRecord]:
    """Credits and calls since ``since``, grouped by ``by`` and always split test vs live, the
    most consumed first (read from the daily rollup: metering/reads/rollup.py)."""
    unknown = [d for d in by if d not in BREAKDOWN_DIMENSIONS]
    if unknown:
        raise InvalidInput(
            f"Cannot break down by {', '.join(unknown)}; "
            f"choose from {', '.join(BREAKDOWN_DIMENSIONS)}."
        )
    dims = list(dict.fromkeys([*by, "test_run"]))
    groups = read_usage_groups(conn, workspace_id, by=dims, since=since, member_id=member_id)
    records = [
        BreakdownRecord(dimensions=dict(zip(dims, key, strict=True)), credits_ucr=c, calls=n)
        for key, (c, n) in groups.items()
    ]
    return sorted(records, key=lambda r: (-r.credits_ucr, repr(sorted(r.dimensions.items()))))
