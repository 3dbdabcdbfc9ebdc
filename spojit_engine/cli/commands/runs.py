"""``spojit run FLOW`` and ``spojit demo``: run workflows as Prefect flows billed to a
workspace, watch each node, and show what it cost (``cli/runner.py`` does the running).

Prefect and LiteLLM are imported inside the commands (through ``runner``), after
``runner.prepare_environment``: Prefect reads its home and logging settings once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.rule import Rule

from spojit_engine.cli.context import CommandContext, open_caller, open_context
from spojit_engine.cli.default_workspace import hint
from spojit_engine.cli.options import FlowArg, JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    breakdown_table,
    console,
    err_console,
    print_json,
    print_result,
    print_secret,
    run_costs_table,
    run_json,
    say,
    usage_card,
)

if TYPE_CHECKING:
    from types import ModuleType

    from spojit_engine.cli.runner import LoadedFlow, RunReport
    from spojit_engine.engine import Engine
    from spojit_engine.nodes.scope import RunScope

DEMO_ADMIN = "demo-admin@example.com"
# The demo's examples, in order, and which run as a test run.
DEMO_RUNS = (("lead_enrichment", False), ("support_triage", True), ("nightly_digest", False))
DEMO_NEXT = (
    ("spojit executions", "recent runs and what each cost"),
    ("spojit usage --breakdown --by workflow,test_run", "test runs apart"),
    ("spojit run lead_enrichment --test", "a test run: the Loop samples two leads"),
)

app = typer.Typer()


@app.command()
@one_sentence_errors
def run(
    flow: FlowArg,
    test: Annotated[bool, typer.Option("--test", help="A test run: billed, labelled.")] = False,
    sample: Annotated[
        int | None, typer.Option("--sample", help="Test run: every Loop runs on N items.")
    ] = None,
    max_credits: Annotated[
        str | None,
        typer.Option("--max-credits", help="Test run: stop before spending more than C credits."),
    ] = None,
    workspace: WorkspaceOpt = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help="The payload as JSON (default: the flow's sample_input)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a workflow as a Prefect flow billed to the workspace; show what each node cost."""
    from spojit_engine.cli import runner
    from spojit_engine.nodes.scope import RunScope
    from spojit_engine.settings import get_settings

    scope = RunScope.of(test=test, sample=sample, max_credits=max_credits)  # bad scope: nothing run
    runner.prepare_environment(get_settings().home)
    loaded = runner.load_flow(flow)
    payload = runner.payload_of(loaded, input_json)
    ctx = open_context(workspace)
    if not json_out:
        _announce(ctx, loaded, scope)
    start_prefect(runner)
    report = run_one(ctx, runner, loaded, test=test, payload=payload, show=not json_out,
                     scope=scope)  # fmt: skip
    balance = ctx.engine.balance(ctx.workspace_id)
    if json_out:
        print_json(run_json(report, balance))
        return
    console.print(usage_card(balance))


def _announce(ctx: CommandContext, loaded: LoadedFlow, scope: RunScope) -> None:
    """The line ``spojit run`` opens with: what runs, how, where, as whom, with which LLM."""
    kind = "test run" if scope.test else "live run"
    kind += f", Loops on {scope.sample} items" if scope.sample is not None else ""
    kind += f", at most {scope.max_credits} credits" if scope.max_credits is not None else ""
    who = ctx.actor.email if ctx.actor else "operator"
    say("Running [bold]{workflow}[/] ({kind}) · workspace [bold]{workspace}[/] · {who} · {llm}",
        workflow=loaded.workflow.name, kind=kind, who=who, llm=_llm_mode(),
        workspace=ctx.engine.balance(ctx.workspace_id).workspace)  # fmt: skip


def _llm_mode() -> str:
    from spojit_engine.llm import llm_mode

    mode = llm_mode()
    return "mock LLM (offline)" if mode == "mock" else f"{mode} LLM"


def start_prefect(runner: ModuleType) -> None:
    """Start Prefect (its local server when no API is configured), saying so on stderr."""
    with err_console.status("Starting Prefect (its local server takes a while the first time)…"):
        runner.start_prefect()


def run_one(ctx: CommandContext, runner: ModuleType, loaded: LoadedFlow, *, test: bool,
            payload: Any, show: bool, scope: RunScope | None = None) -> RunReport:  # fmt: skip
    """Run one workflow; print its result and costs (``show``); raise its error as one sentence."""
    report: RunReport = runner.run_flow(
        ctx.engine, loaded, workspace_id=ctx.workspace_id, member_id=ctx.actor_id, test=test,
        payload=payload, console=console if show else None, scope=scope,
    )  # fmt: skip
    if show and report.error is None:
        console.print(Rule("Result", style="dim", align="left"))
        print_result(report.result)
    if show and report.nodes:
        console.print(run_costs_table(report))
    runner.raise_for(report)
    return report


@app.command()
@one_sentence_errors
def demo(
    workspace: Annotated[
        str, typer.Option("--workspace", "-w", help="The demo's workspace (reused if it exists).")
    ] = "demo",
    plan: Annotated[str, typer.Option(help="Plan of a new demo workspace.")] = "starter",
) -> None:
    """Run the three example workflows offline, then show Usage this period and its breakdown."""
    from spojit_engine.cli import runner
    from spojit_engine.settings import get_settings

    runner.prepare_environment(get_settings().home, offline=True)
    ctx = _demo_context(workspace, plan)
    from spojit_engine.db import masked

    console.print(f"Database: {masked(ctx.engine.database_url)} · mock LLM (offline)",
                  markup=False, highlight=False)  # fmt: skip
    start_prefect(runner)
    for i, (name, test) in enumerate(DEMO_RUNS, start=1):
        loaded = runner.load_flow(name)
        kind = "test run" if test else "live run"
        console.print()
        console.print(Rule(f"{i}/{len(DEMO_RUNS)} {name} ({kind})", align="left"))
        if loaded.workflow.description:
            console.print(loaded.workflow.description, style="dim", highlight=False)
        run_one(ctx, runner, loaded, test=test, payload=loaded.sample_input, show=True)
    console.print()
    _demo_summary(ctx)


def _demo_context(workspace: str, plan: str) -> CommandContext:
    """A member runs the demo in their own workspace; the operator in ``workspace``, made on
    ``plan`` (with an admin) unless it exists."""
    caller = open_caller()
    if caller.actor is not None:
        ctx = caller.in_workspace(workspace)
        say("Using workspace [bold]{workspace}[/] as {who}.", workspace=workspace,
            who=caller.actor.email)  # fmt: skip
        return ctx
    return CommandContext(caller.engine, None, _demo_workspace(caller.engine, workspace, plan))


def _demo_workspace(engine: Engine, workspace: str, plan: str) -> str:
    """The operator's demo workspace: reused if it exists, else created with an admin."""
    from spojit_engine.errors import AlreadyExists

    try:
        ws = engine.create_workspace(workspace, plan=plan)
    except AlreadyExists:
        ws_id = engine.workspace_id(workspace)
        say("Reusing workspace [bold]{workspace}[/] ({id}).", workspace=workspace, id=ws_id)
        return ws_id
    admin = engine.add_member(ws.id, DEMO_ADMIN, role="admin")
    say("Created workspace [bold]{name}[/] ({id}) on plan {plan}.", name=ws.name, id=ws.id,
        plan=ws.plan)  # fmt: skip
    say("Admin {email}; token, shown once:", email=admin.email)
    print_secret(admin.token)
    return ws.id


def _demo_summary(ctx: CommandContext) -> None:
    """After the runs: the usage card, the breakdown, and what to try next."""
    console.print(usage_card(ctx.engine.balance(ctx.workspace_id)))
    dims = ("workflow", "node_type")
    rows = ctx.engine.breakdown(ctx.workspace_id, by=dims, member_id=ctx.own_only)
    console.print(breakdown_table(rows, dims, ctx.engine.member_emails(ctx.workspace_id)))
    console.print("Next:", style="bold")
    for command, what in DEMO_NEXT:
        runnable = hint(ctx.engine, command, ctx.workspace_id, member=ctx.actor is not None)
        say("  [bold]{command}[/]  {what}", command=runnable, what=what)
