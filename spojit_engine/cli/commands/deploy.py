"""``spojit deploy`` and ``spojit deployments``: Prefect deployments of workflows bound to a
workspace, and what the credit guard did to them.

Both talk to the Prefect server named by ``PREFECT_API_URL`` (deployments only make sense on a
server with a scheduler: ``prefect server start``); Prefect is imported inside the commands."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spojit_engine.cli.context import CommandContext, open_caller, open_context
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    print_command,
    print_json,
    print_secret,
    say,
    text_column,
    to_jsonable,
)

if TYPE_CHECKING:
    from spojit_engine.cli.runner import LoadedFlow
    from spojit_engine.guards.budgets import WorkflowBudget
    from spojit_engine.guards.deployments.deploy import Deployed, DeployRequest
    from spojit_engine.nodes import Workflow

app = typer.Typer()
InputOpt = Annotated[
    str | None,
    typer.Option("--input", help="The payload of every run it starts, as JSON (default: none)."),
]


@app.command("deploy")
@one_sentence_errors
def deploy(
    flow: Annotated[
        str, typer.Argument(help="An example name, a .py file, or module:attr.", show_default=False)
    ],
    name: Annotated[
        str | None,
        typer.Option(help="Deployment (and webhook) name; default: the workflow's name."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(help="Cron schedule, UTC (default: the workflow's Trigger cron, if any)."),
    ] = None,
    interval: Annotated[int | None, typer.Option(help="Run every SECONDS instead.")] = None,
    webhook: Annotated[
        bool,
        typer.Option("--webhook", help="Also give it a webhook: POST /hooks/NAME with a secret."),
    ] = False,
    max_credits_per_run: Annotated[str | None, typer.Option(help="Budget cap per run.")] = None,
    max_credits_per_day: Annotated[str | None, typer.Option(help="Budget cap per UTC day.")] = None,
    reserve: Annotated[
        str | None,
        typer.Option(help="p95 or max: each run holds that estimate at start, or does not start."),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="Its runs are test runs (billed, labelled test).")
    ] = False,
    sample: Annotated[int | None, typer.Option(help="Test runs: Loops run on N items.")] = None,
    max_credits: Annotated[
        str | None, typer.Option("--max-credits", help="Test runs: stop at C credits each.")
    ] = None,
    input_json: InputOpt = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deploy a workflow to Prefect, billed to the workspace, its schedules guarded by credits."""
    from spojit_engine.cli import runner
    from spojit_engine.guards.runs.reserve import check_policy
    from spojit_engine.money import credits_to_ucr_exact
    from spojit_engine.nodes.scope import RunScope

    for cap in (max_credits_per_run, max_credits_per_day):
        if cap is not None:
            credits_to_ucr_exact(cap)  # refuse a bad cap before anything is deployed
    scope = RunScope.of(test=test, sample=sample, max_credits=max_credits)
    check_policy(reserve)
    ctx = open_context(workspace)
    ctx.engine.require_admin(ctx.workspace_id, ctx.actor_id, "deploy workflows")
    loaded = runner.load_flow(flow)
    parameters = scope.parameters() | run_payload(loaded, input_json)
    deployed = ctx.engine.deploy(
        deploy_request(ctx, flow, loaded.workflow, name=name, cron=cron, interval=interval,
                       webhook=webhook, parameters=parameters, reserve=reserve)
    )  # fmt: skip
    budget = set_caps(ctx, loaded.workflow.name, per_run=max_credits_per_run,
                      per_day=max_credits_per_day)  # fmt: skip
    if json_out:
        print_json(deployed_json(ctx, deployed, budget))
        return
    print_deployed(ctx, deployed, budget)


def run_payload(loaded: LoadedFlow, input_json: str | None) -> dict[str, Any]:
    """``--input`` as the deployment's ``payload`` parameter: a scheduled run has no caller to
    hand it one. Not JSON: ``InvalidInput``, before anything is deployed."""
    from spojit_engine.cli import runner

    return {} if input_json is None else {"payload": runner.payload_of(loaded, input_json)}


def entrypoint_of(spec: str) -> tuple[str, str]:
    """Prefect's entrypoint of a workflow spec (as ``spojit run`` takes it) and the directory
    its runs start in: a file's own folder, or here for ``module:attr``."""
    from spojit_engine.cli import runner

    target, _, attr = spec.partition(":")
    attr = attr or "workflow"
    if spec in runner.EXAMPLES:
        path = (runner.examples_dir() / f"{spec}.py").resolve()
        return f"{path}:{attr}.flow", str(path.parent)
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        return f"{path}:{attr}.flow", str(path.parent)
    return f"{target}:{attr}.flow", os.getcwd()


def deploy_request(ctx: CommandContext, spec: str, workflow: Workflow, *, name: str | None,
                   cron: str | None, interval: int | None, webhook: bool,
                   parameters: dict[str, Any], reserve: str | None) -> DeployRequest:  # fmt: skip
    """What ``spojit deploy``'s options ask of the guard: the schedule is ``--cron`` or
    ``--interval``, else the workflow's own Trigger cron."""
    from spojit_engine.guards.deployments.deploy import DeployRequest

    trigger_cron = workflow.trigger.cron if workflow.trigger is not None else None
    entrypoint, directory = entrypoint_of(spec)
    return DeployRequest(
        workflow=workflow.name,
        entrypoint=entrypoint,
        directory=directory,
        name=name or workflow.name,
        workspace_id=ctx.workspace_id,
        cron=cron if cron or interval is not None else trigger_cron,
        interval_seconds=interval,
        webhook=webhook,
        description=workflow.description or None,
        parameters=parameters,
        reserve=reserve,
    )


def set_caps(ctx: CommandContext, workflow: str, *, per_run: str | None,
             per_day: str | None) -> WorkflowBudget | None:  # fmt: skip
    """The workflow's budget caps when either is given, as set; else None (none set)."""
    if per_run is None and per_day is None:
        return None
    return ctx.engine.set_workflow_budget(
        ctx.workspace_id, workflow, max_credits_per_run=per_run, max_credits_per_day=per_day
    )


def webhook_url(ctx: CommandContext, deployed: Deployed) -> str | None:
    """Where the deployment's webhook is reached (``SPOJIT_PUBLIC_URL``), if it has one."""
    if not deployed.webhook_path:
        return None
    return ctx.engine.settings.public_url.rstrip("/") + deployed.webhook_path


def deployed_json(
    ctx: CommandContext, deployed: Deployed, budget: WorkflowBudget | None
) -> dict[str, Any]:
    """``spojit deploy --json``: the deployment, its webhook (secret shown once), its caps."""
    return {
        "deployment_id": deployed.deployment_id,
        "name": deployed.name,
        "workflow": deployed.workflow,
        "workspace_id": ctx.workspace_id,
        "schedule": deployed.schedule,
        "work_pool": deployed.pool,
        "webhook_url": webhook_url(ctx, deployed),
        "webhook_secret": deployed.webhook_secret,
        "max_credits_per_run": budget.max_credits_per_run if budget else None,
        "max_credits_per_day": budget.max_credits_per_day if budget else None,
        "renewals_deployment_id": deployed.renewals_deployment_id,
    }


def print_deployed(ctx: CommandContext, deployed: Deployed, budget: WorkflowBudget | None) -> None:
    """What was deployed, its webhook and secret (once), its caps, and how to start a worker."""
    settings = ctx.engine.settings
    workspace = ctx.engine.balance(ctx.workspace_id).workspace
    say("Deployed [bold]{workflow}[/] as [bold]{name}[/] ({id}) for workspace {workspace}: "
        "{schedule}, work pool {pool}.", workflow=deployed.workflow, name=deployed.name,
        id=deployed.deployment_id, workspace=workspace,
        schedule=deployed.schedule or "no schedule", pool=deployed.pool)  # fmt: skip
    url = webhook_url(ctx, deployed)
    if url:
        print_command(f"Webhook: POST {url}  (Authorization: Bearer <secret>)", indent="")
        if "public_url" not in settings.model_fields_set:
            console.print(
                "  (the default address; set SPOJIT_PUBLIC_URL to where `spojit serve` is "
                "reached, e.g. https://hooks.example.com)",
                style="dim",
                highlight=False,
            )
        console.print("Its secret, shown once:")
        print_secret(deployed.webhook_secret)
    if budget:
        console.print(
            f"Caps: {_cap(budget.max_credits_per_run)} per run, "
            f"{_cap(budget.max_credits_per_day)} per UTC day.",
            highlight=False,
        )
    console.print("spojit-renewals is deployed too. Start a worker with this environment:")
    print_command(worker_command(settings, deployed.pool))


def worker_command(settings: Any, pool: str) -> str:
    """The worker's command line with the environment this process uses (the ledger's
    database, the Prefect API), so its runs bill the same ledger. A database URL with a
    password is never printed: the command reads it from this shell's SPOJIT_DATABASE_URL."""
    import shlex

    from prefect.settings import PREFECT_API_URL

    if settings.database_url:
        from spojit_engine.db import masked

        url = settings.database_url
        shown = shlex.quote(url) if masked(url) == url else '"$SPOJIT_DATABASE_URL"'
        where = f"SPOJIT_DATABASE_URL={shown}"
    else:
        where = f"SPOJIT_HOME={shlex.quote(str(settings.home))}"
    api = PREFECT_API_URL.value()
    prefect = f" PREFECT_API_URL={shlex.quote(api)}" if api else ""
    return f"{where}{prefect} prefect worker start --pool {shlex.quote(pool)} --type process"


def _cap(value: Decimal | None) -> str:
    from spojit_engine.display import credits_text

    return "no cap" if value is None else f"{credits_text(value)} credits"


@app.command("deployments")
@one_sentence_errors
def deployments(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Deployments: schedule, paused by the guard (and why), by a person, or not; webhooks."""
    caller = open_caller()
    # The operator sees every workspace's deployments unless one is named.
    ws_id = caller.workspace_id_of(workspace) if workspace or caller.actor else None
    rows = caller.engine.deployments(ws_id)
    names = {w.id: w.name for w in caller.engine.workspaces()}
    if json_out:
        out = [to_jsonable(r) for r in rows]
        for row in out:
            row["workspace"] = names.get(row["workspace_id"])
        print_json(out)
        return
    if not rows:
        console.print("No deployments yet; `spojit deploy FLOW --cron '0 6 * * *'` makes one.")
        return
    console.print(deployments_table(rows, names))


def deployments_table(rows: list[Any], names: dict[str, str]) -> Any:
    """One row per deployment; names fold, never cut (at 80 columns a name wraps whole)."""
    table = new_table("Deployments", title_justify="left")
    for column in ("deployment", "workflow", "workspace", "schedule", "status", "webhook"):
        # fold, never cut: at 80 columns a name wraps onto the next line whole
        text_column(table, column, min_width=8 if column != "status" else 12)
    for r in rows:
        status = r.status + (f": {r.reason}" if r.reason else "")
        hook = (
            f"/hooks/{r.webhook} ({r.queued} queued, {r.dead_letters} failed)" if r.webhook else "-"
        )
        add_row(
            table,
            r.name,
            r.workflow,
            names.get(r.workspace_id, r.workspace_id),
            ", ".join(r.schedules) or "-",
            status,
            hook,
        )
    return table
