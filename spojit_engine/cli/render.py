"""Turning results into what a person (Rich) or a program (JSON) reads. Credits in JSON are
decimal strings and times ISO 8601, as in the HTTP API.

Three rules for everything Rich prints, kept here once:

- **User text is literal.** A reason, a workflow, node or member name goes through ``literal``
  (a table cell, a title) or ``say`` (a sentence with our own markup around it): Rich reads no
  markup in it, so a reason ``[/x]`` prints as written instead of failing the command.
- **Numbers are never cut.** Tables come from ``new_table`` with ``text_column`` (wraps, folding
  a long word) and ``number_column`` (never wraps): at 80 columns a name wraps, ``1,007.25``
  stays whole.
- **Commands are printed whole** (``print_command``): never wrapped mid-line, so a copy-paste runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from spojit_engine.display import credits_column, credits_text
from spojit_engine.money import ucr_to_credits
from spojit_engine.results import Balance, BreakdownRow, TimelineDay, member_label

if TYPE_CHECKING:
    from spojit_engine.cli.runner import RunReport
    from spojit_engine.results import Execution

console = Console()
err_console = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
    """Decimals as strings, datetimes as ISO 8601, dataclasses and pydantic models as objects."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="python"))
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


def literal(value: object) -> Text:
    """User text exactly as written (None as empty): Rich reads no markup in it."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def say(template: str, /, *, to: Console | None = None, **values: object) -> None:
    """Print ``template`` (our Rich markup) with ``values`` (user text) inserted literally."""
    shown = template.format(**{name: escape(str(v)) for name, v in values.items()})
    (to or console).print(shown, highlight=False)


def print_command(command: str, *, indent: str = "  ") -> None:
    """A command a person copies: one line however narrow the terminal, exactly as it is."""
    console.print(indent + command, markup=False, highlight=False, soft_wrap=True)


def new_table(title: str | None = None, **options: Any) -> Table:
    """A table whose title (which may name a workflow or workspace) is literal text."""
    return Table(title=None if title is None else literal(title), **options)


def text_column(table: Table, header: str, *, footer: str = "", **options: Any) -> None:
    """A column of words: it wraps, and a word longer than the column folds (never cut)."""
    table.add_column(header, footer=footer, overflow="fold", **options)


def number_column(table: Table, header: str, *, footer: str = "") -> None:
    """A column of numbers, right-aligned: it never wraps, so other columns give way first. Its
    header breaks at its first space ("credits\\ntypical"): a column as wide as its longest
    header would leave the names no room at 80 columns."""
    table.add_column(header.replace(" ", "\n", 1), footer=footer, justify="right", no_wrap=True)


def add_row(table: Table, *cells: object) -> None:
    """A row whose text cells are literal (a styled ``Text`` keeps its style)."""
    table.add_row(*(literal(cell) for cell in cells))


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, default=str))


def print_secret(secret: str | None) -> None:
    """A token or secret on a line of its own, exactly as it is: a person copies it."""
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


def resumed_text(resumed: list[str], pending: bool) -> str:
    """One sentence on what the guard did with new credits (a grant, a plan change)."""
    if resumed:
        return f"The guard resumed: {', '.join(resumed)}."
    if pending:
        return (
            "A resume is pending (Prefect was not reachable); `spojit serve` completes it "
            "within seconds, or the next spojit-renewals run."
        )
    return "Nothing was paused by the guard."


def usage_card(balance: Balance) -> Panel:
    """The "Usage this period" card (its amounts share one number of places)."""
    lines: list[tuple[str, Decimal]] = [
        ("Credits consumed", balance.consumed),
        ("Credits remaining", balance.remaining),
        ("  from allowance", balance.allowance_remaining),
        ("  from top-ups", balance.topup_remaining),
    ]
    if balance.other_remaining:
        lines.append(("  from other grants", balance.other_remaining))
    if balance.held:
        lines.append(("On hold (running steps)", balance.held))
    if balance.overdraft:
        lines.append(("Overdraft (paid from the next grant)", balance.overdraft))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right", no_wrap=True)
    for (label, _), text in zip(lines, credits_column(a for _, a in lines), strict=True):
        grid.add_row(label, text)
    grid.add_row("Allowance resets", f"{balance.resets_at:%Y-%m-%d %H:%M} UTC")
    plan = balance.plan + (f" (-> {balance.pending_plan} at reset)" if balance.pending_plan else "")
    add_row(grid, "Plan", plan)
    return Panel(grid, title=literal(f"Usage this period — {balance.workspace}"), expand=False)


def breakdown_total(rows: list[BreakdownRow]) -> dict[str, Any]:
    """The total row of a breakdown: it equals the period's consumed (member's own: theirs)."""
    return {
        "credits": sum((r.credits for r in rows), ucr_to_credits(0)),  # six places, even empty
        "calls": sum(r.calls for r in rows),
    }


def breakdown_table(
    rows: list[BreakdownRow], by: tuple[str, ...], emails: Mapping[str, str]
) -> Table:
    """The "View breakdown" table, most expensive first, with its total."""
    total = breakdown_total(rows)
    *cells, total_text = credits_column([*(r.credits for r in rows), total["credits"]])
    table = new_table("Breakdown this period", show_footer=True, box=box.SIMPLE_HEAD)
    for i, dim in enumerate(by):
        text_column(table, dim.replace("_", " "), footer="Total" if i == 0 else "")
    text_column(table, "run", footer="" if by else "Total")
    number_column(table, "calls", footer=str(total["calls"]))
    number_column(table, "credits", footer=total_text)
    for row, credits in zip(rows, cells, strict=True):
        dims = [row.label(dim, emails) for dim in by]
        add_row(table, *dims, "test" if row.test_run else "live", str(row.calls), credits)
    return table


def timeline_table(days: list[TimelineDay]) -> Table:
    """``spojit usage --timeline``: each day's credits and calls, and what drove it."""
    total = sum((d.credits for d in days), Decimal(0))
    *cells, total_text = credits_column([*(d.credits for d in days), total])
    table = new_table("Usage day by day", show_footer=True, box=box.SIMPLE_HEAD)
    table.add_column("day", footer="Total", no_wrap=True)
    number_column(table, "calls", footer=str(sum(d.calls for d in days)))
    number_column(table, "credits", footer=total_text)
    for name in ("top workflow", "top node type", "top model"):
        text_column(table, name)

    def driver(name: str | None, credits: Decimal | None) -> str:
        return "" if name is None or credits is None else f"{name} ({credits_text(credits)})"

    for day, credits in zip(days, cells, strict=True):
        add_row(
            table, f"{day.day:%Y-%m-%d}", str(day.calls), credits,
            driver(day.workflow, day.workflow_credits),
            driver(day.node_type, day.node_type_credits), driver(day.model, day.model_credits),
        )  # fmt: skip
    return table


def print_result(result: Any) -> None:
    """A workflow's answer: text as it is, anything else as JSON."""
    if isinstance(result, str):
        console.print(result, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print_json(json.dumps(to_jsonable(result), default=str))


def run_costs_table(report: RunReport) -> Table:
    """The credits one run cost, per node, in the order the nodes ran."""
    kind = "test run" if report.test_run else "live run"
    run = f"flow run {report.flow_run_name}, " if report.flow_run_name else ""
    models = sorted({m for n in report.nodes if n.models for m in n.models.split(",")})
    title = f"Credits this run — {report.workflow} ({run}{kind})"
    table = new_table(
        title,
        caption=literal(f"Models: {', '.join(models)}") if models else None,
        show_footer=True,
        box=box.SIMPLE_HEAD,
        min_width=len(title) + 2,
    )
    *cells, total_text = credits_column([*(n.credits for n in report.nodes), report.credits])
    text_column(table, "node", footer="Total")
    text_column(table, "type")
    number_column(table, "calls", footer=str(sum(n.calls for n in report.nodes)))
    number_column(table, "tokens in/out")
    number_column(table, "credits", footer=total_text)
    for node, credits in zip(report.nodes, cells, strict=True):
        tokens = f"{node.tokens_in}/{node.tokens_out}" if node.tokens_in or node.tokens_out else ""
        name = node.node if node.status == "ok" else f"{node.node} ({node.status})"
        add_row(table, name, node.node_type, str(node.calls), tokens, credits)
    return table


def run_json(report: RunReport, balance: Balance) -> dict[str, Any]:
    return {
        "workflow": report.workflow,
        "workspace_id": report.workspace_id,
        "flow_run_id": report.flow_run_id,
        "flow_run_name": report.flow_run_name,
        "state": report.state,
        "test_run": report.test_run,
        "member_id": report.member_id,
        "result": report.result,
        "nodes": report.nodes,
        "credits": report.credits,
        "usage": {
            "consumed": balance.consumed,
            "remaining": balance.remaining,
            "held": balance.held,
            "resets_at": balance.resets_at,
        },
    }


def executions_table(runs: list[Execution], members: dict[str, str]) -> Table:
    """Executions: flow runs, the latest started first, with what started each and what it
    consumed (Prefect's run name: a run id's first characters are the same for every
    scheduled run of a deployment)."""
    table = new_table("Executions")
    for name in ("started (UTC)", "workflow", "run name", "trigger", "status", "run", "member"):
        text_column(table, name)
    number_column(table, "node calls")
    number_column(table, "credits")
    for run, credits in zip(runs, credits_column(r.credits for r in runs), strict=True):
        status = Text(run.status, style="" if run.status == "ok" else "red")
        member = member_label(run.member_id, members)
        add_row(
            table, f"{run.started_at:%Y-%m-%d %H:%M:%S}", run.workflow or "—",
            run.run_name or run.flow_run_id, run.trigger or "—", status,
            "test" if run.test_run else "live", member, str(run.node_calls), credits,
        )  # fmt: skip
    return table
