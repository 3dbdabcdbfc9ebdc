"""What time does to a workspace's credits, applied lazily by the first ledger operation that
finds the workspace due (and by the sweeper): period renewals, then expired grants, then expired
holds. Every step has its own idempotency key, so running it twice, or in two steps, is the same
as running it once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from spojit_engine.errors import LedgerUnavailable
from spojit_engine.metering.core.catalog import Catalog
from spojit_engine.metering.core.holds import HoldState, transition
from spojit_engine.metering.core.periods import add_months_clamped, months_between
from spojit_engine.metering.core.records import DEFAULT_PRIORITY, GrantRecord
from spojit_engine.metering.ledger.posting import LedgerTx, inserted_id
from spojit_engine.metering.store import schema


def allowance_key(workspace_id: str, period_start_iso: str) -> str:
    return f"allowance:{workspace_id}:{period_start_iso}"


def grant_block(
    tx: LedgerTx,
    *,
    key: str,
    kind: str,
    amount_ucr: int,
    priority: int,
    effective_at: datetime,
    expires_at: datetime | None,
    granted_by: str,
    reason: str | None = None,
) -> GrantRecord:
    """Insert a grant and its entry; an outstanding overdraft is paid from it first. Every grant
    says who made it (a member id, "operator", "stripe", "plan") and, ideally, why."""
    pays_overdraft = min(amount_ucr, tx.account.overdraft_ucr)
    grant_id = inserted_id(
        tx.conn.execute(
            schema.grants.insert().values(
                workspace_id=tx.account.id,
                key=key,
                kind=kind,
                amount_ucr=amount_ucr,
                remaining_ucr=0,
                priority=priority,
                effective_at=effective_at,
                expires_at=expires_at,
                created_at=tx.now,
                granted_by=granted_by,
                reason=reason,
            )
        )
    )
    postings: list[tuple[int | None, int]] = [(grant_id, amount_ucr - pays_overdraft)]
    if pays_overdraft:
        postings.append((None, pays_overdraft))
    tx.post(
        kind="grant",
        key=key,
        amount_ucr=amount_ucr,
        postings=postings,
        grant_id=grant_id,
        reason=reason,
        next_due_at=expires_at,
    )
    return GrantRecord(
        id=grant_id,
        workspace_id=tx.account.id,
        key=key,
        kind=kind,
        amount_ucr=amount_ucr,
        remaining_ucr=amount_ucr - pays_overdraft,
        priority=priority,
        effective_at=effective_at,
        expires_at=expires_at,
        granted_by=granted_by,
        reason=reason,
    )


def renew_periods(tx: LedgerTx, catalog: Catalog, *, catch_up_max: int) -> int:
    """Start every period whose start has passed: apply a pending downgrade, grant the allowance.

    Missed periods are each granted (and then expired) in turn, so an overdraft is paid by the
    allowance of the period right after it, however late the workspace is next touched.
    """
    renewed = 0
    while tx.account.period_end <= tx.now:
        if renewed >= catch_up_max:
            raise LedgerUnavailable(
                f"Workspace {tx.account.id} is more than {catch_up_max} periods behind; "
                "raise SPOJIT_RENEWAL_CATCH_UP_PERIODS_MAX to renew it."
            )
        start = tx.account.period_end
        index = months_between(tx.account.anchor_at, start)
        end = add_months_clamped(tx.account.anchor_at, index + 1)
        plan_id = tx.account.pending_plan_id or tx.account.plan_id
        tx.set_account(plan_id=plan_id, pending_plan_id=None, period_start=start, period_end=end)
        grant_allowance(tx, catalog, plan_id)
        renewed += 1
    return renewed


def grant_allowance(tx: LedgerTx, catalog: Catalog, plan_id: str) -> None:
    """The plan's allowance for the current period, expiring at its end (skipped when zero)."""
    allowance_ucr = catalog.plan(plan_id).allowance_ucr
    if allowance_ucr == 0:
        return
    grant_block(
        tx,
        key=allowance_key(tx.account.id, tx.account.period_start.isoformat()),
        kind="allowance",
        amount_ucr=allowance_ucr,
        priority=DEFAULT_PRIORITY["allowance"],
        effective_at=tx.account.period_start,
        expires_at=tx.account.period_end,
        granted_by="plan",
        reason=f"{plan_id} allowance",
    )


def expire_grants(tx: LedgerTx) -> int:
    """Zero every grant whose expiry has passed, one ``grant_expire`` entry each."""
    g = schema.grants.c
    rows = tx.conn.execute(
        select(g.id, g.remaining_ucr)
        .where(g.workspace_id == tx.account.id, g.remaining_ucr > 0, g.expires_at <= tx.now)
        .order_by(g.id)
    ).all()
    for grant_id, remaining_ucr in rows:
        tx.post(
            kind="grant_expire",
            key=f"grant:{grant_id}:expire",
            amount_ucr=-remaining_ucr,
            postings=[(grant_id, -remaining_ucr)],
            grant_id=grant_id,
            reason="expired",
        )
    return len(rows)


def expire_holds(tx: LedgerTx, *, batch_max: int) -> int:
    """Void holds whose timeout has passed: their credits are free again (the sweeper's job).
    A run reservation gives back only its open rest (``settled_ucr`` counts what it drew)."""
    h = schema.holds.c
    rows = tx.conn.execute(
        select(h.id, h.amount_ucr, h.settled_ucr, h.state)
        .where(
            h.workspace_id == tx.account.id, h.state == HoldState.HELD.value, h.expires_at <= tx.now
        )
        .order_by(h.id)
        .limit(batch_max)
    ).all()
    for hold_id, amount_ucr, drawn_ucr, state in rows:
        new_state = transition(hold_id, HoldState(state), HoldState.EXPIRED)
        tx.conn.execute(update(schema.holds).where(h.id == hold_id).values(state=new_state.value))
        tx.post(
            kind="hold_expire",
            key=f"hold:{hold_id}:expire",
            amount_ucr=0,
            held_ucr=-(amount_ucr - (drawn_ucr or 0)),  # a run reservation keeps what it drew
            hold_id=hold_id,
            reason="hold timed out",
        )
    return len(rows)


def maintain(tx: LedgerTx, catalog: Catalog, *, catch_up_max: int, holds_batch_max: int) -> None:
    """Bring a locked workspace up to ``tx.now``."""
    renew_periods(tx, catalog, catch_up_max=catch_up_max)
    expire_grants(tx)
    expire_holds(tx, batch_max=holds_batch_max)
    tx.recompute_next_due()
