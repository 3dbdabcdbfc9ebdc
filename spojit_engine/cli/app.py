"""``spojit`` commands. Each resolves who is acting (``SPOJIT_TOKEN`` names a member; without it
the local operator, who holds the database, acts as admin), calls ``Engine`` once, and renders.
Errors are one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import warnings
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.rule import Rule

from spojit_engine.cli.options import FlowArg, JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.options import acting_member as _actor
from spojit_engine.cli.options import open_engine as _engine
from spojit_engine.cli.options import resolve_workspace as _workspace
from spojit_engine.cli.render import (
    breakdown_table,
    breakdown_total,
    console,
    err_console,
    executions_table,
    print_json,
    print_result,
    run_costs_table,
    run_json,
    timeline_table,
    to_jsonable,
    usage_card,
)

# Pydantic 2.14 warns about Field attributes in Prefect's own models when it first builds their
# schemas; a person reading `spojit run`'s one-line outcome can do nothing about it.
warnings.filterwarnings("ignore", module=r"pydantic\._internal\.")
# requests silences urllib3's warning that SOCKS needs PySocks, but `spojit run` imports LiteLLM
# (and requests with it) on a background thread while Prefect's main thread may be inside
# `warnings.catch_warnings()`, whose exit drops filters added meanwhile; so state it up front.
warnings.filterwarnings("ignore", module=r"urllib3\.contrib\.socks")

app = typer.Typer(
    name="spojit",
    help="Cost-aware workflow execution for Prefect: credits, usage and top-ups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
member_app = typer.Typer(help="Workspace members.", no_args_is_help=True)
ledger_app = typer.Typer(help="The credit ledger.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(ledger_app, name="ledger")


@app.command()
@one_sentence_errors
def init(
    workspace: Annotated[
        str, typer.Option("--workspace", "-w", help="Workspace name.")
    ] = "default",
    plan: Annotated[str, typer.Option(help="Plan id (see the catalog).")] = "free",
    admin: Annotated[str, typer.Option(help="The first admin's email.")] = "admin@example.com",
    json_out: JsonOpt = False,
) -> None:
    """Create the database, a workspace and its first admin (prints the admin's token once)."""
    from spojit_engine.errors import AlreadyExists

    engine = _engine()
    try:
        ws = engine.create_workspace(workspace, plan=plan)
    except AlreadyExists:
        found = engine.workspace_id(workspace)
        result = {"workspace_id": found, "workspace": workspace, "created": False}
        if json_out:
            print_json(result)
        else:
            console.print(
                f"Workspace [bold]{workspace}[/] ({found}) already exists; nothing changed."
            )
        return
    member = engine.add_member(ws.id, admin, role="admin")
    result = {
        "workspace_id": ws.id,
        "workspace": ws.name,
        "plan": ws.plan,
        "created": True,
        "admin": {"id": member.id, "email": member.email, "token": member.token},
    }
    if json_out:
        print_json(result)
        return
    console.print(f"Created workspace [bold]{ws.name}[/] ({ws.id}) on plan {ws.plan}.")
    console.print(f"Admin {member.email} ({member.id}); token, shown once:")
    console.print(member.token, markup=False, highlight=False)
    console.print(f"Database: {engine.database_url}", highlight=False)


@member_app.command("add")
@one_sentence_errors
def member_add(
    email: str,
    role: Annotated[str, typer.Option(help="admin or member.")] = "member",
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a member (admins only); prints the new member's token once."""
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    member = engine.add_member(ws_id, email, role=role, by=actor.id if actor else None)
    if json_out:
        print_json(
            {
                "id": member.id,
                "workspace_id": ws_id,
                "email": member.email,
                "role": member.role,
                "token": member.token,
            }
        )
        return
    console.print(f"Added {member.email} as {member.role} ({member.id}); token, shown once:")
    console.print(member.token, markup=False, highlight=False)


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
            print_json(_usage_json(quick))
            return
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    balance = engine.balance(ws_id)
    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    # A member sees only their own consumption; an admin sees everyone's.
    only = actor.id if actor is not None and not actor.is_admin else None
    rows = engine.breakdown(ws_id, by=dims, member_id=only) if breakdown else None
    day_rows = engine.timeline(ws_id, days=days, member_id=only) if timeline else None
    if json_out:
        out = _usage_json(balance)
        if rows is not None:
            out["breakdown"] = rows
            out["breakdown_total"] = breakdown_total(rows)
        if day_rows is not None:
            out["timeline"] = day_rows
        print_json(out)
        return
    console.print(usage_card(balance))
    if rows is not None:
        console.print(breakdown_table(rows, dims))
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


def _usage_json(balance: Any) -> dict[str, Any]:
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


@ledger_app.command("verify")
@one_sentence_errors
def ledger_verify(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Prove every materialised balance equals the sum of its entries (exit 1 if not)."""
    engine = _engine()
    ws_id = engine.workspace_id(workspace) if workspace else None
    checked = engine.verify(ws_id)
    if json_out:
        print_json({"ok": True, "workspaces_verified": checked})
    else:
        console.print(
            f"Ledger OK: {checked} workspace(s) verified, every balance equals its entries."
        )


# -- running workflows ----------------------------------------------------------------------------

DEMO_ADMIN = "demo-admin@example.com"
# The demo's examples, in order, and which run as a test run.
DEMO_RUNS = (("lead_enrichment", False), ("support_triage", True), ("nightly_digest", False))
DEMO_NEXT = (
    ("spojit executions", "recent runs and what each cost"),
    ("spojit usage --breakdown --by workflow,test_run", "test runs apart"),
    ("spojit run lead_enrichment --test", "a test run: the Loop samples two leads"),
)


def _start_prefect(runner: Any) -> None:
    with err_console.status("Starting Prefect (its local server takes a while the first time)…"):
        runner.start_prefect()


def _run_one(engine: Any, runner: Any, loaded: Any, *, workspace_id: str, actor: Any,
             test: bool, payload: Any, show: bool, scope: Any = None) -> Any:  # fmt: skip
    """Run one workflow; print its result and costs (``show``); raise its error as one sentence."""
    report = runner.run_flow(
        engine, loaded, workspace_id=workspace_id, member_id=actor.id if actor else None,
        test=test, payload=payload, console=console if show else None, scope=scope,
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
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    if not json_out:
        kind = "test run" if test else "live run"
        kind += f", Loops on {sample} items" if sample is not None else ""
        kind += f", at most {scope.max_credits} credits" if scope.max_credits is not None else ""
        who = actor.email if actor else "operator"
        console.print(
            f"Running [bold]{escape(loaded.workflow.name)}[/] ({kind}) · workspace "
            f"[bold]{escape(engine.balance(ws_id).workspace)}[/] · {escape(who)} · "
            f"{_llm_mode()}",
            highlight=False,
        )
    _start_prefect(runner)
    report = _run_one(engine, runner, loaded, workspace_id=ws_id, actor=actor, test=test,
                      payload=payload, show=not json_out, scope=scope)  # fmt: skip
    balance = engine.balance(ws_id)
    if json_out:
        print_json(run_json(report, balance))
        return
    console.print(usage_card(balance))


def _llm_mode() -> str:
    from spojit_engine.llm import llm_mode

    mode = llm_mode()
    return "mock LLM (offline)" if mode == "mock" else f"{mode} LLM"


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
    from spojit_engine.errors import AlreadyExists
    from spojit_engine.settings import get_settings

    runner.prepare_environment(get_settings().home, offline=True)
    engine = _engine()
    actor = _actor(engine)
    if actor is not None:
        ws_id = _workspace(engine, workspace, actor)
        console.print(f"Using workspace [bold]{escape(workspace)}[/] as {escape(actor.email)}.")
    else:
        try:
            ws = engine.create_workspace(workspace, plan=plan)
        except AlreadyExists:
            ws_id = engine.workspace_id(workspace)
            console.print(f"Reusing workspace [bold]{escape(workspace)}[/] ({ws_id}).")
        else:
            ws_id = ws.id
            admin = engine.add_member(ws.id, DEMO_ADMIN, role="admin")
            console.print(
                f"Created workspace [bold]{escape(ws.name)}[/] ({ws.id}) on plan {ws.plan}."
            )
            console.print(f"Admin {admin.email}; token, shown once:")
            console.print(admin.token, markup=False, highlight=False)
    console.print(f"Database: {engine.database_url} · mock LLM (offline)", highlight=False)
    _start_prefect(runner)
    for i, (name, test) in enumerate(DEMO_RUNS, start=1):
        loaded = runner.load_flow(name)
        kind = "test run" if test else "live run"
        console.print()
        console.print(Rule(f"{i}/{len(DEMO_RUNS)} {name} ({kind})", align="left"))
        if loaded.workflow.description:
            console.print(loaded.workflow.description, style="dim", highlight=False)
        _run_one(engine, runner, loaded, workspace_id=ws_id, actor=actor, test=test,
                 payload=loaded.sample_input, show=True)  # fmt: skip
    console.print()
    console.print(usage_card(engine.balance(ws_id)))
    only = actor.id if actor is not None and not actor.is_admin else None
    dims = ("workflow", "node_type")
    console.print(breakdown_table(engine.breakdown(ws_id, by=dims, member_id=only), dims))
    console.print("Next:", style="bold")
    from spojit_engine.cli.workspace_cmds import hint

    for command, what in DEMO_NEXT:
        runnable = hint(engine, command, ws_id, member=actor is not None)
        console.print(f"  [bold]{escape(runnable)}[/]  {what}", highlight=False)


@one_sentence_errors
def executions(
    workspace: WorkspaceOpt = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Recent runs (Executions): workflow, when, status, test or live, credits, member."""
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    # A member sees only their own runs; an admin (or the local operator) sees everyone's.
    only = actor.id if actor is not None and not actor.is_admin else None
    runs = engine.executions(ws_id, member_id=only, limit=limit)
    members = {m: engine.member(m).email for m in {r.member_id for r in runs if r.member_id}}
    if json_out:
        rows = [to_jsonable(r) for r in runs]
        for row in rows:
            row["member"] = members.get(row["member_id"]) if row["member_id"] else None
        print_json(rows)
        return
    if not runs:
        console.print("No runs yet this far back; try `spojit demo` or `spojit run FLOW`.")
        return
    console.print(executions_table(runs, members))


# -- billing: spojit topup, spojit plan set|list, spojit serve (cli/billing_cmds.py) --------------
from spojit_engine.cli.billing_cmds import register as _register_billing  # noqa: E402

_register_billing(app)

# -- credit guards: spojit deploy, spojit deployments (cli/guard_cmds.py) -------------------------
from spojit_engine.cli.guard_cmds import register as _register_guards  # noqa: E402

_register_guards(app)

# -- admin credits: spojit credits grant|list (cli/credits_cmds.py) ------------------------------
from spojit_engine.cli.credits_cmds import register as _register_credits  # noqa: E402

_register_credits(app)
# -- sign-in to the web pages: spojit login-link (cli/signin_cmds.py) -----------------------------
from spojit_engine.cli.signin_cmds import register as _register_signin  # noqa: E402

_register_signin(app)

# -- the default workspace: spojit workspace use|list (cli/workspace_cmds.py) -------------------
from spojit_engine.cli.workspace_cmds import register as _register_workspace  # noqa: E402

_register_workspace(app)

# -- credit notifications: spojit notify add|list|remove|test (cli/notify_cmds.py) -------------
from spojit_engine.cli.notify_cmds import register as _register_notify  # noqa: E402

_register_notify(app)

# -- estimates and the cost advisor: spojit estimate (cli/estimate_cmds.py) -----------------------
from spojit_engine.cli.estimate_cmds import register as _register_estimate  # noqa: E402

_register_estimate(app)

# -- runs stopped for credits: spojit executions [incomplete|resume|abandon] (cli/runs_cmds.py) -
from spojit_engine.cli.runs_cmds import register as _register_runs  # noqa: E402

_register_runs(app, executions)
