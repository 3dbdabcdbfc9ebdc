"""The alert rules, pure: thresholds and regressions over exact integers (hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from statistics import median

from hypothesis import given
from hypothesis import strategies as st

from spojit_engine.notify.decide import crossed_percents, is_out, is_regression, median_ucr

ucr = st.integers(0, 10**12)


@given(consumed=ucr, remaining=st.integers(-(10**9), 10**12), more=st.integers(0, 10**9))
def test_thresholds_are_exact_and_only_ever_added_by_spending(
    consumed: int, remaining: int, more: int
) -> None:
    crossed = crossed_percents(consumed, remaining)
    total = consumed + max(remaining, 0)
    for p in (75, 90, 100):
        assert (p in crossed) == (
            consumed > 0 and Fraction(consumed, total or 1) >= Fraction(p, 100)
        )
    # Spending `more` of what remains never un-crosses a threshold.
    spent = min(more, max(remaining, 0))
    assert set(crossed) <= set(crossed_percents(consumed + spent, remaining - spent))
    assert is_out(consumed, remaining) == (remaining <= 0 and consumed > 0)


@given(previous=st.lists(ucr, min_size=1, max_size=12), run=ucr, runs=st.integers(1, 12),
       factor=st.decimals(Decimal("1.01"), Decimal("10"), places=2))  # fmt: skip
def test_a_regression_is_a_run_above_factor_times_the_exact_median(
    previous: list[int], run: int, runs: int, factor: Decimal
) -> None:
    assert Fraction(median_ucr(previous)) == median([Fraction(v) for v in previous])
    window = previous[:runs]
    expected = len(previous) >= runs and Fraction(run) > Fraction(factor) * median(
        [Fraction(v) for v in window]
    )
    assert is_regression(run, previous, factor=factor, runs=runs) == expected
