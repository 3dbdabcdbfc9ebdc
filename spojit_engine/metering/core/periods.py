"""Billing-period arithmetic. Pure: plain datetimes in, plain datetimes out.

Periods are half-open ``[start, end)`` and anchored on the plan's start: period ``k`` starts
``k`` months after the anchor, on the anchor's day of month clamped to the month's length
(anchor Jan 31 -> Feb 28 or 29 -> Mar 31 -> Apr 30). Each start is computed from the anchor,
never from the previous period, so a clamp in February does not drag March back to the 28th.
A plan term is ``term_months`` periods long; top-ups expire at the end of the term they land in.
"""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months_clamped(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by whole months, its day clamped to the target month's last day."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def months_between(anchor: datetime, moment: datetime) -> int:
    """The index of the period holding ``moment`` (0 for the first); negative before the anchor."""
    guess = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    if add_months_clamped(anchor, guess) > moment:
        guess -= 1
    elif add_months_clamped(anchor, guess + 1) <= moment:
        guess += 1
    return guess


def period_containing(anchor: datetime, moment: datetime) -> tuple[datetime, datetime]:
    """The billing period ``[start, end)`` that holds ``moment``."""
    index = months_between(anchor, moment)
    return add_months_clamped(anchor, index), add_months_clamped(anchor, index + 1)


def term_end(anchor: datetime, term_months: int, moment: datetime) -> datetime:
    """The end of the plan term that holds ``moment``: when a top-up bought then expires."""
    if term_months <= 0:
        raise ValueError("term_months must be positive")
    term_index = months_between(anchor, moment) // term_months
    return add_months_clamped(anchor, (term_index + 1) * term_months)
