"""``spojit notify add|list|remove|test``: credit notifications (admins, or the local operator).

No ``from __future__ import annotations`` here: Typer reads the commands' annotations, which name
options imported inside ``register`` (as in billing_cmds).
"""

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spojit_engine.cli.render import console, print_json
from spojit_engine.display import credits_text


def _admin_workspace(engine: Any, workspace: str | None) -> str:
    from spojit_engine.cli.options import acting_member as _actor
    from spojit_engine.cli.options import resolve_workspace as _workspace
    from spojit_engine.errors import AdminRequired

    actor = _actor(engine)
    if actor is not None and not actor.is_admin:
        raise AdminRequired("manage notifications", actor.email)
    return str(_workspace(engine, workspace, actor))


def _what(rule: Any) -> str:
    if rule.kind == "thresholds":
        return "75/90/100 % of the period's credits, out of credits, resumed"
    if rule.kind == "run_above":
        return f"a live run of {rule.workflow} above {credits_text(rule.above)} credits"
    return f"a live run of {rule.workflow} above {rule.factor} x the median of its last {rule.runs}"


def register(app: typer.Typer) -> None:
    from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
    from spojit_engine.cli.options import open_engine as _engine

    notify_app = typer.Typer(help="Credit notifications.", no_args_is_help=True)
    app.add_typer(notify_app, name="notify")

    @notify_app.command("add")
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
            typer.Option(
                help="With --workflow: alert on a run above K x the median of its last runs."
            ),
        ] = None,
        runs: Annotated[int, typer.Option(help="With --regression: how many earlier runs.")] = 10,
        workspace: WorkspaceOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Add a notification: workspace thresholds, or a per-workflow cost rule."""
        from spojit_engine.errors import InvalidInput

        if workflow is not None and (above is None) == (regression is None):
            raise InvalidInput("A workflow rule takes one of --above C or --regression K.")
        if workflow is None and (above is not None or regression is not None):
            raise InvalidInput("--above and --regression go with --workflow.")
        kind = "thresholds" if workflow is None else "run_above" if above else "regression"
        engine = _engine()
        ws_id = _admin_workspace(engine, workspace)
        rule = engine.add_notification(ws_id, kind=kind, webhook=webhook, block=block,
                                       workflow=workflow, above=above, factor=regression,
                                       runs=runs)  # fmt: skip
        if json_out:
            print_json(rule)
            return
        console.print(
            f"Added notification {rule.id}: {escape(_what(rule))} -> {escape(rule.target)}.",
            highlight=False,
            soft_wrap=True,
        )

    @notify_app.command("list")
    @one_sentence_errors
    def list_(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
        """The workspace's notification rules and its latest alerts."""
        engine = _engine()
        ws_id = _admin_workspace(engine, workspace)
        rules, sent = engine.notification_rules(ws_id), engine.notifications_sent(ws_id)
        if json_out:
            print_json({"rules": rules, "recent": sent})
            return
        if not rules:
            console.print("No notifications yet; `spojit notify add --webhook URL` adds one.")
            return
        table = Table(title="Notifications")
        for column in ("id", "when", "to"):
            table.add_column(column)
        for rule in rules:
            table.add_row(rule.id, escape(_what(rule)), escape(f"{rule.channel} {rule.target}"))
        console.print(table)
        if sent:
            recent = Table(title="Latest alerts")
            for column in ("created (UTC)", "rule", "alert", "state", "attempts", "last error"):
                recent.add_column(column)
            for s in sent:
                recent.add_row(f"{s.created_at:%Y-%m-%d %H:%M:%S}", s.rule_id, escape(s.subject),
                               s.state, str(s.attempts), escape(s.last_error or ""))  # fmt: skip
            console.print(recent)

    @notify_app.command("remove")
    @one_sentence_errors
    def remove(
        rule_id: Annotated[str, typer.Argument(help="The notification's id (spojit notify list).")],
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Remove a notification rule."""
        engine = _engine()
        engine.remove_notification(_admin_workspace(engine, workspace), rule_id)
        console.print(f"Removed notification {escape(rule_id)}.", highlight=False)

    @notify_app.command("test")
    @one_sentence_errors
    def test(
        rule_id: Annotated[str, typer.Argument(help="The notification's id (spojit notify list).")],
        workspace: WorkspaceOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Send a test alert through a notification's target now (exit 1 if it fails)."""
        from spojit_engine.errors import InvalidInput

        engine = _engine()
        sent = engine.test_notification(_admin_workspace(engine, workspace), rule_id)
        if json_out:
            print_json(sent)
        if sent.state != "sent":
            raise InvalidInput(f"The test alert was not delivered: {sent.last_error}")
        if not json_out:
            console.print(f"Sent a test alert through {escape(rule_id)}.", highlight=False)
