"""``spojit notify add|list|remove|test``: credit notifications (admins, or the local operator).

A rule is the workspace's thresholds (75/90/100 % of the period's credits, out of credits,
resumed) or a per-workflow cost rule (a live run above C credits, or above K x the median of its
last runs); each goes to a webhook or a Prefect notification block."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spojit_engine.cli.context import CommandContext, open_caller
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    number_column,
    print_json,
    say,
    text_column,
)
from spojit_engine.display import credits_text

RuleArg = Annotated[str, typer.Argument(help="The notification's id (spojit notify list).")]

app = typer.Typer(name="notify", help="Credit notifications.", no_args_is_help=True)


def open_admin_context(workspace: str | None) -> CommandContext:
    """The context of an admin (or the operator); a member is refused before any workspace is
    looked up."""
    from spojit_engine.errors import AdminRequired

    caller = open_caller()
    if caller.actor is not None and not caller.actor.is_admin:
        raise AdminRequired("manage notifications", caller.actor.email)
    return caller.in_workspace(workspace)


def rule_kind(workflow: str | None, above: str | None, regression: str | None) -> str:
    """Which rule ``notify add``'s options describe: thresholds, run_above or regression."""
    from spojit_engine.errors import InvalidInput

    if workflow is not None and (above is None) == (regression is None):
        raise InvalidInput("A workflow rule takes one of --above C or --regression K.")
    if workflow is None and (above is not None or regression is not None):
        raise InvalidInput("--above and --regression go with --workflow.")
    return "thresholds" if workflow is None else "run_above" if above else "regression"


def describe(rule: Any) -> str:
    """What a rule alerts on, in words."""
    if rule.kind == "thresholds":
        return "75/90/100 % of the period's credits, out of credits, resumed"
    if rule.kind == "run_above":
        return f"a live run of {rule.workflow} above {credits_text(rule.above)} credits"
    return f"a live run of {rule.workflow} above {rule.factor} x the median of its last {rule.runs}"


@app.command("add")
@one_sentence_errors
def add(
    webhook: Annotated[
        str | None, typer.Option(help="POST each alert as JSON to this URL.")
    ] = None,
    block: Annotated[
        str | None,
        typer.Option(help="Or a Prefect notification block, TYPE/NAME (slack-webhook/ops)."),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="A workflow rule (default: workspace thresholds).")
    ] = None,
    above: Annotated[
        str | None, typer.Option(help="With --workflow: alert on a run above C credits.")
    ] = None,
    regression: Annotated[
        str | None,
        typer.Option(help="With --workflow: alert on a run above K x the median of its last runs."),
    ] = None,
    runs: Annotated[int, typer.Option(help="With --regression: how many earlier runs.")] = 10,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a notification: workspace thresholds, or a per-workflow cost rule."""
    kind = rule_kind(workflow, above, regression)
    ctx = open_admin_context(workspace)
    rule = ctx.engine.add_notification(ctx.workspace_id, kind=kind, webhook=webhook, block=block,
                                       workflow=workflow, above=above, factor=regression,
                                       runs=runs)  # fmt: skip
    if json_out:
        print_json(rule)
        return
    console.print(
        f"Added notification {rule.id}: {describe(rule)} -> {rule.target}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
@one_sentence_errors
def list_rules(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """The workspace's notification rules and its latest alerts."""
    ctx = open_admin_context(workspace)
    rules = ctx.engine.notification_rules(ctx.workspace_id)
    sent = ctx.engine.notifications_sent(ctx.workspace_id)
    if json_out:
        print_json({"rules": rules, "recent": sent})
        return
    if not rules:
        console.print("No notifications yet; `spojit notify add --webhook URL` adds one.")
        return
    console.print(rules_table(rules))
    if sent:
        console.print(alerts_table(sent))


def rules_table(rules: list[Any]) -> Table:
    """Each rule: its id, what it alerts on, where it sends."""
    table = new_table("Notifications")
    for column in ("id", "when", "to"):
        text_column(table, column)
    for rule in rules:
        add_row(table, rule.id, describe(rule), f"{rule.channel} {rule.target}")
    return table


def alerts_table(sent: list[Any]) -> Table:
    """The latest alerts and how their delivery went."""
    table = new_table("Latest alerts")
    for column in ("created (UTC)", "rule", "alert", "state"):
        text_column(table, column)
    number_column(table, "attempts")
    text_column(table, "last error")
    for s in sent:
        add_row(table, f"{s.created_at:%Y-%m-%d %H:%M:%S}", s.rule_id, s.subject,
                s.state, str(s.attempts), s.last_error or "")  # fmt: skip
    return table


@app.command("remove")
@one_sentence_errors
def remove(rule_id: RuleArg, workspace: WorkspaceOpt = None) -> None:
    """Remove a notification rule."""
    ctx = open_admin_context(workspace)
    ctx.engine.remove_notification(ctx.workspace_id, rule_id)
    say("Removed notification {rule}.", rule=rule_id)


@app.command("test")
@one_sentence_errors
def test(rule_id: RuleArg, workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Send a test alert through a notification's target now (exit 1 if it fails)."""
    from spojit_engine.errors import InvalidInput

    ctx = open_admin_context(workspace)
    sent = ctx.engine.test_notification(ctx.workspace_id, rule_id)
    if json_out:
        print_json(sent)
    if sent.state != "sent":
        raise InvalidInput(f"The test alert was not delivered: {sent.last_error}")
    if not json_out:
        say("Sent a test alert through {rule}.", rule=rule_id)
