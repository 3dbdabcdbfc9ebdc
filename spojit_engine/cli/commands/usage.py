"""``spojit usage [--breakdown] [--timeline]``: the "Usage this period" card, what drove it
(the breakdown by workflow, node type, member, test run) and day by day (the timeline).

The local operator's plain ``spojit usage --json`` reads the card over the bare driver
(``metering/reads/quick_read.py``: no SQLAlchemy, no ``Engine``) and falls back to the ``Engine``
whenever that cannot answer exactly; ``tests/test_cli_fast.py`` holds it to that."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from spojit_engine.cli.context import open_context
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    breakdown_table,
    breakdown_total,
    console,
    print_json,
    timeline_table,
    usage_card,
)

app = typer.Typer()


@app.command()
@one_sentence_errors
def usage(
    workspace: WorkspaceOpt = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="View breakdown too.")] = False,
    by: Annotated[
        str,
        typer.Option(
            help="Breakdown dimensions, comma-separated: workflow, node_type, member, test_run."
        ),
    ] = "workflow,node_type",
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Day by day: what drove each day's credits.")
    ] = False,
    days: Annotated[
        int | None, typer.Option(help="With --timeline: the last N days (default: this period).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Usage this period: consumed, remaining, the reset date (and the breakdown, the timeline)."""
    from spojit_engine.errors import InvalidInput

    if days is not None and not timeline:
        raise InvalidInput("--days goes with --timeline.")
    if json_out and not breakdown and not timeline and not os.environ.get("SPOJIT_TOKEN"):
        quick = _quick_balance(workspace)  # the bare driver: no SQLAlchemy, no Engine
        if quick is not None:
            print_json(usage_json(quick))
            return
    ctx = open_context(workspace)
    engine, ws_id, only = ctx.engine, ctx.workspace_id, ctx.own_only
    balance = engine.balance(ws_id)
    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    rows = engine.breakdown(ws_id, by=dims, member_id=only) if breakdown else None
    day_rows = engine.timeline(ws_id, days=days, member_id=only) if timeline else None
    if json_out:
        out = usage_json(balance)
        if rows is not None:
            out["breakdown"] = rows
            out["breakdown_total"] = breakdown_total(rows)
        if day_rows is not None:
            out["timeline"] = day_rows
        print_json(out)
        return
    console.print(usage_card(balance))
    if rows is not None:
        console.print(breakdown_table(rows, dims, engine.member_emails(ws_id)))
    if day_rows is not None:
        console.print(timeline_table(day_rows))


def _quick_balance(workspace: str | None) -> Any:
    """The local operator's usage card read by the bare driver, or None (the full path answers:
    something is due, the schema is old, the workspace is unknown or ambiguous)."""
    from spojit_engine.clock import utcnow
    from spojit_engine.metering.reads.quick_read import quick_balance
    from spojit_engine.results import Balance
    from spojit_engine.settings import get_settings

    url = get_settings().resolved_database_url()
    record = quick_balance(url, workspace, utcnow())
    return None if record is None else Balance.of(record)


def usage_json(balance: Any) -> dict[str, Any]:
    """The card as JSON (``spojit usage --json``)."""
    return {
        "workspace_id": balance.workspace_id,
        "workspace": balance.workspace,
        "plan": balance.plan,
        "pending_plan": balance.pending_plan,
        "consumed": balance.consumed,
        "remaining": balance.remaining,
        "allowance_remaining": balance.allowance_remaining,
        "topup_remaining": balance.topup_remaining,
        "other_remaining": balance.other_remaining,
        "held": balance.held,
        "overdraft": balance.overdraft,
        "period_start": balance.period_start,
        "resets_at": balance.resets_at,
    }
