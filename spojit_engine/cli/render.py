"""Turning results into what a person (Rich) or a program (JSON) reads. Credits in JSON are
decimal strings and times ISO 8601, as in the HTTP API."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from spojit_engine.display import credits_text
from spojit_engine.results import Balance, BreakdownRow

console = Console()
err_console = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
    """Decimals as strings, datetimes as ISO 8601, dataclasses as objects."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2))


def usage_card(balance: Balance) -> Panel:
    """The "Usage this period" card."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    grid.add_row("Credits consumed", credits_text(balance.consumed))
    grid.add_row("Credits remaining", credits_text(balance.remaining))
    grid.add_row("  from allowance", credits_text(balance.allowance_remaining))
    grid.add_row("  from top-ups", credits_text(balance.topup_remaining))
    if balance.other_remaining:
        grid.add_row("  from other grants", credits_text(balance.other_remaining))
    if balance.held:
        grid.add_row("On hold (running steps)", credits_text(balance.held))
    if balance.overdraft:
        grid.add_row("Overdraft (paid from the next grant)", credits_text(balance.overdraft))
    grid.add_row("Allowance resets", f"{balance.resets_at:%Y-%m-%d %H:%M} UTC")
    plan = balance.plan + (f" (-> {balance.pending_plan} at reset)" if balance.pending_plan else "")
    grid.add_row("Plan", plan)
    return Panel(grid, title=f"Usage this period — {balance.workspace}", expand=False)


def breakdown_table(rows: list[BreakdownRow], by: tuple[str, ...]) -> Table:
    """The "View breakdown" table, most expensive first."""
    table = Table(title="Breakdown this period")
    for dim in by:
        table.add_column(dim.replace("_", " "))
    table.add_column("run")
    table.add_column("calls", justify="right")
    table.add_column("credits", justify="right")
    for row in rows:
        cells = [str(getattr(row, dim) or "—") for dim in by]
        table.add_row(
            *cells, "test" if row.test_run else "live", str(row.calls), credits_text(row.credits)
        )
    return table
