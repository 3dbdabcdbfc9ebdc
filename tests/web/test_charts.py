"""The daily chart's geometry (pure): a round axis, the whole period, exact labels."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.web.pages.charts import HEIGHT_PX, daily_chart, round_up


def test_the_axis_ends_at_a_round_number() -> None:
    assert [round_up(Decimal(v)) for v in ("0", "0.3", "1", "1.01", "3", "7.5", "63.875125")] == [
        1, Decimal("0.5"), 1, 2, 5, 10, 100,
    ]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**12), places=6))
def test_round_up_is_the_smallest_1_2_5_step_at_or_above(value: Decimal) -> None:
    top = round_up(value)
    mantissa = top.scaleb(-top.adjusted())
    assert mantissa in (1, 2, 5) and top >= value
    previous = top * 2 / 5 if mantissa == 5 else top / 2  # the step below in 1, 2, 5, 10, …
    assert previous < value


def test_bars_span_the_period_and_future_days_are_empty_slots() -> None:
    first = date(2026, 12, 1)
    chart = daily_chart(
        [(first, Decimal("40")), (first + timedelta(days=2), Decimal("10.000001"))],
        first=first,
        end=date(2027, 1, 1),
        today=first + timedelta(days=2),
    )
    assert len(chart.bars) == 31 and [b.future for b in chart.bars[:4]] == [False] * 3 + [True]
    tallest, _, small = chart.bars[:3]
    assert tallest.height > small.height > 0 and tallest.y >= 0
    assert small.label == "Dec 03: 10.000001 credits"  # exact, as everywhere
    assert [t.text for t in chart.y_ticks] == ["0.00", "25.00", "50.00"]
    assert chart.bars[-1].x + chart.bars[-1].width <= chart.plot_right
    assert "the busiest day was Dec 01: 40.00 credits" in chart.summary
    assert all(0 <= b.y <= HEIGHT_PX for b in chart.bars)
