"""Which alerts are due — pure functions over plain numbers (µcr), no database or HTTP.

Workspace thresholds: a period's credits are what it consumed plus what it still has; an alert
fires at 75 %, 90 % and 100 % of them, when nothing is left (out of credits), and when credits
come back after that (resumed). Each once per period: the period start is part of its key.
Workflow rules look at a live run's credits: above a limit, or above ``factor`` x the median of
the workflow's previous ``runs`` live runs (a regression; never before there are that many).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

THRESHOLDS_PERCENT = (75, 90, 100)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert for one rule; ``key`` is its idempotency key (UNIQUE in the outbox)."""

    key: str
    event: str
    subject: str
    text: str
    details: dict[str, Any]


def crossed_percents(consumed_ucr: int, remaining_ucr: int) -> list[int]:
    """The thresholds the period has reached: consumed >= p % of (consumed + remaining)."""
    total = consumed_ucr + max(remaining_ucr, 0)
    if total <= 0 or consumed_ucr <= 0:
        return []
    return [p for p in THRESHOLDS_PERCENT if consumed_ucr * 100 >= p * total]


def is_out(consumed_ucr: int, remaining_ucr: int) -> bool:
    """Nothing left to spend (and something was: a fresh empty workspace is not an event)."""
    return remaining_ucr <= 0 and consumed_ucr > 0


def median_ucr(values: list[int]) -> Decimal:
    """The exact median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[middle])
    return (Decimal(ordered[middle - 1]) + Decimal(ordered[middle])) / 2


def is_regression(run_ucr: int, previous_ucr: list[int], *, factor: Decimal, runs: int) -> bool:
    """A run costs more than ``factor`` x the median of the ``runs`` live runs before it."""
    if len(previous_ucr) < runs or not previous_ucr:
        return False
    return Decimal(run_ucr) > factor * median_ucr(previous_ucr[:runs])
