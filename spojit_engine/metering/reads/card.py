"""The usage card from the rows it is made of (pure): what the full read path (``reports.py``,
SQLAlchemy) and the quick one (``quick_read.py``, the bare driver) both compute, written once.

``remaining`` = spendable grants (effective, unexpired, not empty) - held - overdraft: what can
still run; by kind: allowance, top-ups, the rest; ``consumed`` = debits and settles this period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from spojit_engine.metering.core.burn import Block, spendable


@dataclass(frozen=True, slots=True)
class BalanceRecord:
    workspace_id: str
    workspace_name: str
    plan_id: str
    pending_plan_id: str | None
    consumed_ucr: int
    remaining_ucr: int
    allowance_remaining_ucr: int
    topup_remaining_ucr: int
    other_remaining_ucr: int
    held_ucr: int
    overdraft_ucr: int
    period_start: datetime
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class AccountRow:
    """The workspace row's fields the card shows."""

    workspace_id: str
    name: str
    plan_id: str
    pending_plan_id: str | None
    period_start: datetime
    period_end: datetime
    held_ucr: int
    overdraft_ucr: int


def balance_of(
    account: AccountRow, grants: Iterable[tuple[Block, str]], consumed_ucr: int, now: datetime
) -> BalanceRecord:
    """The card of ``account`` at ``now``, from its grants with credits left (block, kind)."""
    grants = list(grants)
    live_ids = {b.id for b in spendable((b for b, _ in grants), now)}
    by_kind: dict[str, int] = {}
    for block, kind in grants:
        if block.id in live_ids:
            by_kind[kind] = by_kind.get(kind, 0) + block.remaining_ucr
    allowance = by_kind.pop("allowance", 0)
    topup = by_kind.pop("topup", 0)
    other = sum(by_kind.values())
    return BalanceRecord(
        workspace_id=account.workspace_id,
        workspace_name=account.name,
        plan_id=account.plan_id,
        pending_plan_id=account.pending_plan_id,
        consumed_ucr=consumed_ucr,
        remaining_ucr=allowance + topup + other - account.held_ucr - account.overdraft_ucr,
        allowance_remaining_ucr=allowance,
        topup_remaining_ucr=topup,
        other_remaining_ucr=other,
        held_ucr=account.held_ucr,
        overdraft_ucr=account.overdraft_ucr,
        period_start=account.period_start,
        resets_at=account.period_end,
    )
