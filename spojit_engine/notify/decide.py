"""Which alerts are due — pure functions over plain numbers (µcr), no database or HTTP.

Workspace thresholds: a period's credits are what it consumed plus what it still has; an alert
fires at 75 %, 90 % and 100 % of them (each once per period: the period start is part of its
key). "Out of credits" fires when the credit guard pauses the workspace (it may pause with credits
left: a step needed more than remained) or when nothing is left, once per such episode; "resumed"
fires once after it, when the guard has resumed and credits are back.
Workflow rules look at a live run's credits: above a limit, or above ``factor`` x the median of
the workflow's previous ``runs`` live runs (a regression; never before there are that many).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True, slots=True)
class WorkspaceStop:
    """The credit guard has paused a workspace: since when, and the sentence it recorded."""

    since: datetime
    reason: str


# How the notifier learns whether the guard paused a workspace (the ``Engine`` wires the guard's
# answer in: notify and guards are peers and never import each other).
StopOf = Callable[[str], WorkspaceStop | None]


def out_episode(period: str, stop: WorkspaceStop | None, last_resumed_id: int | None) -> str:
    """The key of an "out of credits" alert: one per guard pause (its start), else one per
    period and per return of credits (the resumed alert it follows)."""
    if stop is not None:
        return f"{period}:out:{stop.since.isoformat()}"
    return f"{period}:out" if last_resumed_id is None else f"{period}:out:after-{last_resumed_id}"


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
