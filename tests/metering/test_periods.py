"""Period arithmetic: anchored, month-end clamped, half-open, contiguous."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.metering.core.periods import (
    add_months_clamped,
    months_between,
    period_containing,
    term_end,
)

anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


def test_jan_31_clamps_to_feb_and_comes_back_to_mar_31() -> None:
    anchor = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    starts = [add_months_clamped(anchor, k).date().isoformat() for k in range(5)]
    assert starts == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]
    assert add_months_clamped(datetime(2028, 1, 31, tzinfo=UTC), 1).day == 29  # leap year


@settings(max_examples=300)
@given(anchors, st.integers(min_value=0, max_value=24 * 30 * 24 * 3600))
def test_every_moment_falls_in_exactly_one_half_open_period(anchor: datetime, seconds: int) -> None:
    moment = anchor + timedelta(seconds=seconds)
    start, end = period_containing(anchor, moment)
    assert start <= moment < end
    index = months_between(anchor, moment)
    assert start == add_months_clamped(anchor, index)
    assert end == add_months_clamped(anchor, index + 1)
    assert period_containing(anchor, end)[0] == end  # the next period starts where this one ends
    assert start.day == min(anchor.day, calendar.monthrange(start.year, start.month)[1])
    assert start.time() == anchor.time()


@settings(max_examples=300)
@given(anchors, st.integers(min_value=0, max_value=60), st.sampled_from([1, 3, 12]))
def test_a_term_ends_after_the_moment_on_a_term_boundary(
    anchor: datetime, months: int, term_months: int
) -> None:
    moment = add_months_clamped(anchor, months)
    end = term_end(anchor, term_months, moment)
    assert end > moment
    assert months_between(anchor, end) % term_months == 0
    assert months_between(anchor, end) - months_between(anchor, moment) <= term_months


def test_a_term_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        term_end(datetime(2026, 1, 1, tzinfo=UTC), 0, datetime(2026, 1, 1, tzinfo=UTC))
