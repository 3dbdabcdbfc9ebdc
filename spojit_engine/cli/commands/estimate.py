"""``spojit estimate FLOW [--items N] [--input JSON] [--workspace W] [--json]``: what a run will
cost before it runs — per node and in total, LLM calls and credits as typical, p95 and max —
and the cost advisor's suggestions. FLOW is found as for ``spojit run``; the payload defaults to
the flow's ``sample_input``. Nothing is billed and Prefect is not started."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from spojit_engine.cli.context import Caller, open_caller
from spojit_engine.cli.options import FlowArg, JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    number_column,
    print_json,
    text_column,
)

if TYPE_CHECKING:
    from rich.table import Table

    from spojit_engine.estimation import Estimate

app = typer.Typer()


@app.command()
@one_sentence_errors
def estimate(
    flow: FlowArg,
    items: Annotated[
        int | None,
        typer.Option("--items", min=0, help="How many items the workflow's loops go over."),
    ] = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", help="The payload as JSON (default: the flow's sample_input)."),
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="A test run: loops on their test sample.")
    ] = False,
    sample: Annotated[
        int | None, typer.Option("--sample", help="A test run's loops run on N items.")
    ] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What a run will cost before it runs: LLM calls and credits (typical, p95, max)."""
    from spojit_engine.cli import runner

    loaded = runner.load_flow(flow)
    payload = runner.payload_of(loaded, input_json)
    caller = open_caller()
    est = caller.engine.estimate(
        _estimate_workspace(caller, workspace), loaded.workflow, items=items, inputs=payload,
        test=test, sample=sample,
    )  # fmt: skip
    if json_out:
        print_json(est.to_json())
        return
    console.print(estimate_table(est))
    for advice in est.advice:
        console.print(f"• {advice.message}", markup=False, highlight=False, soft_wrap=True)


def _estimate_workspace(caller: Caller, name: str | None) -> str | None:
    """The workspace whose history and prices apply; with no workspace yet, none (static)."""
    if name is None and caller.actor is None and not caller.engine.workspaces():
        return None
    return caller.workspace_id_of(name)


def estimate_table(est: Estimate) -> Table:
    """The estimate per node, with the total as the footer; each credits column (and its
    total) shares one number of places."""
    from rich import box

    from spojit_engine.display import credits_column

    total = est.total
    title = f"Estimate — {est.workflow} (one {'test' if est.test_run else 'live'} run)"
    caption = "measured: from this workspace's runs · static: from prompts and prices"
    table = new_table(title, caption=caption, show_footer=True, box=box.SIMPLE_HEAD,
                      min_width=len(title) + 2)  # fmt: skip
    text_column(table, "node", footer="Total")
    text_column(table, "type")
    number_column(table, "runs")
    text_column(table, "source")
    calls = total.llm_calls
    number_column(table, "LLM calls", footer=f"{calls.typical}/{calls.p95}/{calls.max}")
    columns = {}
    for column in ("typical", "p95", "max"):
        amounts = [getattr(n.credits, column) for n in est.nodes]
        *columns[column], footer = credits_column([*amounts, getattr(total.credits, column)])
        number_column(table, f"credits {column}", footer=footer)
    for i, n in enumerate(est.nodes):
        add_row(
            table, n.name, n.node_type, str(n.runs), n.source,
            f"{n.llm_calls.typical}/{n.llm_calls.p95}/{n.llm_calls.max}",
            *(columns[c][i] for c in ("typical", "p95", "max")),
        )  # fmt: skip
    return table
