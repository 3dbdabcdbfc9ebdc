"""Burn order: which credit block pays first. Pure: plain values in, plain values out.

The comparator, in words: the lowest ``priority`` number burns first; among equal priorities
the block that expires soonest burns first (a block that never expires burns last); then the
oldest (earliest ``effective_at``); the id breaks every remaining tie, so the order is total
and a shuffled input always burns the same way.

The same comparator lives once more, in SQL, in PostgreSQL's one-call debit (``spojit_debit``,
as migration ``0011_lean_debit`` installs it): ``ORDER BY priority, (expires_at IS NULL),
expires_at, effective_at, id``. Change one, change both; the state machine test runs both paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Block:
    """A grant as the burn order sees it."""

    id: int
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    remaining_ucr: int


def burn_order_key(block: Block) -> tuple[int, bool, datetime | None, datetime, int]:
    """The one sort key of the burn order (see the module docstring)."""
    never_expires = block.expires_at is None
    return (block.priority, never_expires, block.expires_at, block.effective_at, block.id)


def spendable(blocks: Iterable[Block], now: datetime) -> list[Block]:
    """The blocks that can pay at ``now``, in burn order: effective, unexpired, not empty."""
    live = [
        b
        for b in blocks
        if b.remaining_ucr > 0
        and b.effective_at <= now
        and (b.expires_at is None or now < b.expires_at)
    ]
    return sorted(live, key=burn_order_key)


@dataclass(frozen=True, slots=True)
class Allocation:
    """How an amount is paid: ``takes`` per block id, and what no block could pay."""

    takes: tuple[tuple[int, int], ...]
    shortfall_ucr: int


def allocate(
    ordered: Sequence[Block], amount_ucr: int, *, budget_ucr: int | None = None
) -> Allocation:
    """Pay ``amount_ucr`` from ``ordered`` blocks (already in burn order), first block first.

    ``budget_ucr`` caps what may be taken in total (credits reserved by holds are not ours to
    spend); whatever is left unpaid is the shortfall, which the caller refuses or records as an
    overdraft.
    """
    left = amount_ucr if budget_ucr is None else min(amount_ucr, max(budget_ucr, 0))
    takes: list[tuple[int, int]] = []
    for block in ordered:
        if left == 0:
            break
        take = min(block.remaining_ucr, left)
        if take > 0:
            takes.append((block.id, take))
            left -= take
    paid = sum(take for _, take in takes)
    return Allocation(takes=tuple(takes), shortfall_ucr=amount_ucr - paid)
