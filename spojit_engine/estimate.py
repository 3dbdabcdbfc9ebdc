"""Estimates and cost advice as the ``Engine`` hands them back: credits as ``Decimal`` (the µcr of
``estimation/plans.py``, exact — estimates round up once, there), LLM calls as ints."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spojit_engine.estimation.plans import NodeRow, PlanEstimate, Spread, estimate_plan
from spojit_engine.money import ucr_to_credits

if TYPE_CHECKING:
    from spojit_engine.estimation.advice import Suggestion
    from spojit_engine.metering.meter.runtime import Runtime
    from spojit_engine.nodes import Workflow


@dataclass(frozen=True, slots=True)
class Calls:
    typical: int
    p95: int
    max: int

    @classmethod
    def of(cls, spread: Spread) -> Calls:
        return cls(spread.typical, spread.p95, spread.max)


@dataclass(frozen=True, slots=True)
class Credits:
    typical: Decimal
    p95: Decimal
    max: Decimal

    @classmethod
    def of(cls, spread: Spread) -> Credits:
        return cls(*(ucr_to_credits(v) for v in (spread.typical, spread.p95, spread.max)))


@dataclass(frozen=True, slots=True)
class EstimateTotal:
    llm_calls: Calls
    credits: Credits


@dataclass(frozen=True, slots=True)
class NodeEstimate:
    """One node's part of a run; ``source`` is ``measured`` (workspace history) or ``static``."""

    name: str
    node_type: str
    runs: int
    llm_calls: Calls
    credits: Credits
    source: str

    @classmethod
    def of(cls, row: NodeRow) -> NodeEstimate:
        return cls(row.name, row.node_type, row.runs, Calls.of(row.llm_calls),
                   Credits.of(row.credits_ucr), row.source)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Advice:
    """One way to spend less: what to change, on which node, and the credits it saves per run."""

    kind: str  # direct_mode, cheaper_model, loop_multiplies, sample_test_loops
    workflow: str
    node: str | None
    message: str
    saves_per_run: Decimal

    @classmethod
    def of(cls, s: Suggestion) -> Advice:
        return cls(s.kind, s.workflow, s.node, s.message, ucr_to_credits(s.saves_ucr))


@dataclass(frozen=True)
class Estimate:
    workflow: str
    workspace_id: str | None
    total: EstimateTotal
    nodes: list[NodeEstimate]
    advice: list[Advice] = field(default_factory=list)
    test_run: bool = False

    @classmethod
    def of(cls, workflow: str, workspace_id: str | None, plan: PlanEstimate,
           advice: list[Advice]) -> Estimate:  # fmt: skip
        total = EstimateTotal(Calls.of(plan.total.llm_calls), Credits.of(plan.total.credits_ucr))
        return cls(workflow, workspace_id, total, [NodeEstimate.of(r) for r in plan.nodes], advice)

    @property
    def measured(self) -> bool:
        return any(n.source == "measured" for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        """The ``spojit estimate --json`` shape: credits as decimal strings."""
        return {
            "workflow": self.workflow,
            "test_run": self.test_run,
            "total": _spreads(self.total.llm_calls, self.total.credits),
            "nodes": [
                {
                    "name": n.name,
                    "node_type": n.node_type,
                    "runs": n.runs,
                    "source": n.source,
                    **_spreads(n.llm_calls, n.credits),
                }
                for n in self.nodes
            ],
            "advice": [advice_json(a) for a in self.advice],
        }


def _spreads(calls: Calls, credits: Credits) -> dict[str, Any]:
    return {
        "llm_calls": {"typical": calls.typical, "p95": calls.p95, "max": calls.max},
        "credits": {k: f"{getattr(credits, k):f}" for k in ("typical", "p95", "max")},
    }


def advice_json(a: Advice) -> dict[str, Any]:
    return {"kind": a.kind, "workflow": a.workflow, "node": a.node, "message": a.message,
            "saves_per_run": f"{a.saves_per_run:f}"}  # fmt: skip


def estimate(
    runtime: Runtime, workspace_id: str | None, workflow: Workflow, *, items: int | None = None,
    inputs: Any = None, test: bool = False, sample: int | None = None,
) -> Estimate:  # fmt: skip
    """The ``Engine.estimate`` behind the facade: plan, price, total, and the advice."""
    from spojit_engine.nodes.advise import advise_workflow
    from spojit_engine.nodes.estimate import plan_workflow

    plan, planner = plan_workflow(
        workflow, runtime=runtime, workspace_id=workspace_id, items=items, inputs=inputs,
        test=test, sample=sample,
    )  # fmt: skip
    advice = [Advice.of(s) for s in advise_workflow(workflow, plan, planner)]
    found = Estimate.of(workflow.name, workspace_id, estimate_plan(plan), advice)
    return replace(found, test_run=test)


def advise(runtime: Runtime, workspace_id: str, workflow: Workflow | str | None) -> list[Advice]:
    """Advice for one workflow (a ``Workflow``: every rule; a name: what history can tell) or
    for every workflow the workspace has run."""
    from spojit_engine.estimation.history import read_history, workflows_with_history
    from spojit_engine.nodes.advise import advise_history

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
