"""Estimates and cost advice as the ``Engine`` hands them back: credits as ``Decimal`` (the µcr of
``plans.py``, converted exactly — estimates round up once, there), LLM calls as ints; and the
``spojit estimate --json`` shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from spojit_engine.estimation.advice import Suggestion
from spojit_engine.estimation.plans import NodeRow, PlanEstimate, Spread
from spojit_engine.money import ucr_to_credits


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
           advice: list[Advice], *, test_run: bool = False) -> Estimate:  # fmt: skip
        total = EstimateTotal(Calls.of(plan.total.llm_calls), Credits.of(plan.total.credits_ucr))
        nodes = [NodeEstimate.of(r) for r in plan.nodes]
        return cls(workflow, workspace_id, total, nodes, advice, test_run)

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
