"""The entry points behind ``Engine.estimate`` and ``Engine.advice`` (and ``Workflow.estimate``):
plan a workflow (``planner.py``), total it (``plans.py``), ask the advisor (``advisor.py``), and
hand back the ``Decimal``-facing results (``results.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spojit_engine.estimation.advisor import advise_history, advise_workflow
from spojit_engine.estimation.history import read_history, workflows_with_history
from spojit_engine.estimation.planner import plan_workflow
from spojit_engine.estimation.plans import estimate_plan
from spojit_engine.estimation.results import Advice, Estimate
from spojit_engine.estimation.shapes import WorkflowShape

if TYPE_CHECKING:
    from spojit_engine.metering.meter.runtime import Runtime


def estimate(
    runtime: Runtime, workspace_id: str | None, workflow: WorkflowShape, *,
    items: int | None = None, inputs: Any = None, test: bool = False, sample: int | None = None,
) -> Estimate:  # fmt: skip
    """What one run of ``workflow`` will cost — plan, price, total — with the advice. ``test``
    and ``sample`` arrive checked as a run checks them (the callers use ``RunScope``)."""
    plan, planner = plan_workflow(
        workflow, runtime=runtime, workspace_id=workspace_id, items=items, inputs=inputs,
        test=test, sample=sample,
    )  # fmt: skip
    advice = [Advice.of(s) for s in advise_workflow(workflow, plan, planner)]
    return Estimate.of(workflow.name, workspace_id, estimate_plan(plan), advice, test_run=test)


def advise(
    runtime: Runtime, workspace_id: str, workflow: WorkflowShape | str | None
) -> list[Advice]:
    """Advice for one workflow (a workflow object: every rule; a name: what history can tell) or
    for every workflow the workspace has run."""
    _, name = runtime.workspace(workspace_id)
    if workflow is not None and not isinstance(workflow, str):
        return estimate(runtime, workspace_id, workflow).advice
    settings, sa_engine = runtime.engine.settings, runtime.engine.sa_engine
    names = [workflow] if workflow else workflows_with_history(
        sa_engine, workspace_id=workspace_id, limit=settings.advice_workflows_max
    )  # fmt: skip
    found = []
    for flow in names:
        history = read_history(
            sa_engine, workspace_id=workspace_id, workflow=flow,
            limit=settings.estimate_history_records_max,
        )  # fmt: skip
        found += advise_history(
            flow, history,
            direct_call_ucr=runtime.book.for_workspace(name).base("connector.direct"),
            share_percent=settings.advice_direct_mode_share_percent,
            calls_min=settings.advice_history_calls_min,
        )  # fmt: skip
    return [Advice.of(s) for s in found]
