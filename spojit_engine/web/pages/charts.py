"""The daily consumption chart's geometry: pure, so the template only draws what this computes.

Bars span the whole period (days still to come are empty slots, so the chart also shows how much
of the period is left); the y axis ends at a round number (1, 2 or 5 x 10^k credits). Pixel
positions are floats; the credits they stand for stay ``Decimal`` and are printed exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from spojit_engine.display import credits_text

WIDTH_PX = 640
HEIGHT_PX = 200
LEFT_PX = 56  # room for the y axis labels
RIGHT_PX = 24  # room for the last day's label
BOTTOM_PX = 24  # room for the day labels
TOP_PX = 8
PERIOD_DAYS_MAX = 62  # a period is a month; clamp anything longer


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    credits: Decimal
    x: float
    y: float
    width: float
    height: float
    future: bool

    @property
    def label(self) -> str:
        return f"{self.day:%b %d}: {credits_text(self.credits)} credits"


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_bottom: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    summary: str


def round_up(value: Decimal) -> Decimal:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (1 for nothing at all)."""
    if value <= 0:
        return Decimal(1)
    step = Decimal(1).scaleb(value.adjusted())
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    raise AssertionError("unreachable: 10 x 10^k exceeds any value of exponent k")


def daily_chart(
    credits_by_day: Sequence[tuple[date, Decimal]], *, first: date, end: date, today: date
) -> Chart:
    """Bars for each day of ``[first, end)``; days after ``today`` are future slots."""
    span = max(1, min((end - first).days, PERIOD_DAYS_MAX))
    days = [first + timedelta(days=i) for i in range(span)]
    spent = dict(credits_by_day)
    top = round_up(max(spent.values(), default=Decimal(0)))
    plot_w, plot_h = WIDTH_PX - LEFT_PX - RIGHT_PX, HEIGHT_PX - BOTTOM_PX - TOP_PX
    slot = plot_w / span
    bottom = float(TOP_PX + plot_h)
    bars = []
    for i, day in enumerate(days):
        credits = spent.get(day, Decimal(0))
        height = float(credits / top) * plot_h
        bars.append(
            Bar(day, credits, LEFT_PX + i * slot + slot * 0.15, bottom - height, slot * 0.7,
                height, day > today)
        )  # fmt: skip
    fractions = (Decimal(0), Decimal("0.5"), Decimal(1))
    y_ticks = [Tick(bottom - plot_h * float(f), credits_text(top * f)) for f in fractions]
    every = max(1, span // 6)
    x_ticks = [
        Tick(LEFT_PX + (i + 0.5) * slot, f"{day:%b %d}")
        for i, day in enumerate(days)
        if i % every == 0
    ]
    busiest = max(bars, key=lambda b: (b.credits, b.day))
    total = sum((b.credits for b in bars), Decimal(0))
    summary = (
        f"{credits_text(total)} credits from {first:%b %d} to {today:%b %d}; the busiest day was "
        f"{busiest.label}."
        if total
        else f"Nothing consumed yet this period ({first:%b %d} to {end:%b %d})."
    )
    return Chart(
        WIDTH_PX, HEIGHT_PX, LEFT_PX, WIDTH_PX - RIGHT_PX, bottom, bars, y_ticks, x_ticks, summary
    )
