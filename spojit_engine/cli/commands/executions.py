"""``spojit executions``: recent runs and what each cost, then the runs stopped for credits; and
under it ``spojit executions incomplete``, ``resume RUN`` and ``abandon RUN``.

A member sees only their own runs; an admin (or the local operator) sees everyone's."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spojit_engine.cli.context import CommandContext, open_context
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    executions_table,
    new_table,
    number_column,
    print_json,
    say,
    text_column,
    to_jsonable,
)

RunArg = Annotated[str, typer.Argument(help="The flow run id (the original or a resumed one).")]

app = typer.Typer(name="executions", help="Recent runs (Executions), and runs stopped for credits.")


@app.callback(invoke_without_command=True)
@one_sentence_errors
def executions(
    invocation: typer.Context,
    workspace: WorkspaceOpt = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Recent runs: workflow, when, status, test or live, credits, member; then the runs
    stopped for credits and what resuming them needs."""
    if invocation.invoked_subcommand is not None:
        return
    ctx = open_context(workspace)
    _print_recent(ctx, limit=limit, json_out=json_out)
    if json_out:
        return
    runs = ctx.engine.incomplete_runs(ctx.workspace_id)
    if runs:
        console.print(incomplete_table(runs))
        console.print("Resume one now: spojit executions resume RUN", style="dim")


def _print_recent(ctx: CommandContext, *, limit: int, json_out: bool) -> None:
    """Recent runs (Executions): workflow, when, status, test or live, credits, member."""
    runs = ctx.engine.executions(ctx.workspace_id, member_id=ctx.own_only, limit=limit)
    members = ctx.engine.member_emails(ctx.workspace_id)
    if json_out:
        rows = [to_jsonable(r) for r in runs]
        for row in rows:
            row["member"] = members.get(row["member_id"]) if row["member_id"] else None
        print_json(rows)
    elif not runs:
        console.print("No runs yet this far back; try `spojit demo` or `spojit run FLOW`.")
    else:
        console.print(executions_table(runs, members))


@app.command("incomplete")
@one_sentence_errors
def incomplete(
    workspace: WorkspaceOpt = None,
    include_done: Annotated[
        bool, typer.Option("--all", help="Also runs already resumed or abandoned.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Runs stopped for credits, oldest first."""
    ctx = open_context(workspace)
    runs = ctx.engine.incomplete_runs(ctx.workspace_id, include_done=include_done)
    if json_out:
        print_json([incomplete_json(r) for r in runs])
    elif runs:
        console.print(incomplete_table(runs))
    else:
        console.print("No run is waiting for credits.")


@app.command("resume")
@one_sentence_errors
def resume(run: RunArg, workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Resume a run stopped for credits from the node that was refused (nodes that had
    finished are neither run nor billed again)."""
    from spojit_engine.cli import runner
    from spojit_engine.errors import InvalidInput
    from spojit_engine.settings import get_settings

    runner.prepare_environment(get_settings().home)
    ctx = open_context(workspace)
    found = ctx.engine.incomplete_run(ctx.workspace_id, run)
    workflow = None
    if found.deployment_id is None:
        if not found.source:
            raise InvalidInput(
                f"Run {found.flow_run_id} was started from Python; resume it there with "
                "engine.resume_run(workspace, run, workflow=...)."
            )
        workflow = runner.load_flow(found.source).workflow
    runner.start_prefect()
    started = ctx.engine.resume_run(ctx.workspace_id, found.flow_run_id, workflow=workflow)
    if json_out:
        print_json(to_jsonable(started))
        return
    what = f"as flow run {started.flow_run_id}" if started.flow_run_id else ""
    ended = f"; it ended {started.state}" if started.state else "; a worker will run it"
    say("Resumed {run} (attempt {attempt}) {what}{ended}.", run=found.flow_run_id,
        attempt=started.attempt, what=what, ended=ended)  # fmt: skip


@app.command("abandon")
@one_sentence_errors
def abandon(run: RunArg, workspace: WorkspaceOpt = None) -> None:
    """Give up a run stopped for credits: it will never resume."""
    ctx = open_context(workspace)
    done = ctx.engine.abandon_run(ctx.workspace_id, run)
    say("Abandoned {run}; it will not resume.", run=done.flow_run_id)


def incomplete_table(runs: list[Any]) -> Table:
    """Runs stopped for credits: where they stopped and what resuming needs at least."""
    from spojit_engine.display import credits_text
    from spojit_engine.money import ucr_to_credits

    table = new_table("Incomplete runs (stopped for credits)")
    for name in ("flow run", "workflow", "trigger", "stopped (UTC)", "refused at", "resumes"):
        text_column(table, name)
    number_column(table, "resuming needs")
    for run in runs:
        add_row(
            table, run.flow_run_id, run.workflow, run.trigger, f"{run.updated_at:%Y-%m-%d %H:%M}",
            run.refused_node or "—", run.resumes,
            f"≥ {credits_text(ucr_to_credits(run.needed_ucr))}",
        )  # fmt: skip
    return table


def incomplete_json(run: Any) -> dict[str, Any]:
    """A run stopped for credits as JSON: what resuming needs in credits, not micro-credits."""
    from spojit_engine.money import ucr_to_credits

    row = to_jsonable(run)
    row["resume_needs"] = str(ucr_to_credits(row.pop("needed_ucr")))
    return row
