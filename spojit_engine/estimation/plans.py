"""What a workflow run will cost, before it runs. Pure: plain values in, plain values out — no
database, Prefect or LiteLLM (``planner.py`` reads a workflow into a plan, ``pricer.py`` prices
its calls, ``history.py`` reads the usage records).

A plan is a tree: ``Step`` (one node call), ``Seq`` (steps in order), ``LoopPlan`` (its own call
plus ``items`` x its body), ``ConditionPlan`` (its own call plus one branch), ``ParallelPlan``
(its own call plus every branch). Each node call's cost is a ``CallCost``: LLM calls and µcr as
a ``Spread`` — ``typical``, ``p95``, ``max`` — and whether it is ``measured`` (history) or
``static`` (prompts and the price book). Totals follow four rules:

- a sequence and a Parallel add;
- a Loop is ``items x body`` (in every column);
- a Condition's typical weighs its branches by the observed ratio (else takes the dearer branch);
  its p95 and max take the dearer branch;
- ``typical <= p95 <= max`` holds for every call, so it holds for every total.

Rounding, stated once: a weighted amount (a branch ratio times µcr or LLM calls) is rounded **up**
(``weighted_ceil``); everything else is integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Union

Source = Literal["measured", "static"]


def weighted_ceil(value: int, weight: Fraction) -> int:
    """``value x weight`` rounded up: an estimate never rounds a cost away."""
    product = value * weight
    return -(-product.numerator // product.denominator)


def percentile(samples: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile of ``samples`` (integers, so no float ever appears)."""
    if not samples:
        raise ValueError("a percentile needs at least one sample")
    ordered = sorted(samples)
    rank = -(-percent * len(ordered) // 100)  # ceil(percent/100 x n), at least 1
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class Spread:
    """An amount (µcr or LLM calls) as ``typical <= p95 <= max``."""

    typical: int
    p95: int
    max: int

    def __post_init__(self) -> None:
        if not 0 <= self.typical <= self.p95 <= self.max:
            raise ValueError(f"a spread needs 0 <= typical <= p95 <= max, not {self}")

    def __add__(self, other: Spread) -> Spread:
        return Spread(self.typical + other.typical, self.p95 + other.p95, self.max + other.max)

    def times(self, n: int) -> Spread:
        return Spread(self.typical * n, self.p95 * n, self.max * n)

    @classmethod
    def of(cls, samples: Sequence[int], *, bound: int) -> Spread:
        """Observed samples: p50 as typical, p95, and the larger of the bound and the largest."""
        return cls(percentile(samples, 50), percentile(samples, 95), max(bound, max(samples)))


ZERO = Spread(0, 0, 0)


@dataclass(frozen=True, slots=True)
class CallCost:
    """One call of one node: its LLM calls and µcr, and where the numbers come from."""

    llm_calls: Spread
    credits_ucr: Spread
    source: Source = "static"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    node_type: str
    cost: CallCost


@dataclass(frozen=True, slots=True)
class Seq:
    steps: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class LoopPlan:
    step: Step  # the Loop's own call
    body: Plan
    items: int
    items_from: str = "input"  # where the count came from: items, input, history, sample, default


@dataclass(frozen=True, slots=True)
class ConditionPlan:
    step: Step
    then: Plan | None
    otherwise: Plan | None
    then_ratio: Fraction | None = None  # observed share of runs taking ``then``; None: unknown


@dataclass(frozen=True, slots=True)
class ParallelPlan:
    step: Step
    branches: tuple[Plan, ...]


Plan = Union[Step, Seq, LoopPlan, ConditionPlan, ParallelPlan]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True, slots=True)
class Totals:
    llm_calls: Spread
    credits_ucr: Spread

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.llm_calls + other.llm_calls, self.credits_ucr + other.credits_ucr)

    def times(self, n: int) -> Totals:
        return Totals(self.llm_calls.times(n), self.credits_ucr.times(n))


NOTHING = Totals(ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node's part of a run: ``runs`` calls (loops multiply), its LLM calls and µcr. A node
    inside a Condition branch shows its typical weighed by the branch ratio, p95/max if it runs."""

    name: str
    node_type: str
    runs: int
    llm_calls: Spread
    credits_ucr: Spread
    source: Source


@dataclass(frozen=True)
class PlanEstimate:
    total: Totals
    nodes: list[NodeRow] = field(default_factory=list)


def totals(plan: Plan) -> Totals:
    """What one run of ``plan`` costs, by the rules in the module docstring."""
    if isinstance(plan, Step):
        return Totals(plan.cost.llm_calls, plan.cost.credits_ucr)
    if isinstance(plan, Seq):
        return sum((totals(p) for p in plan.steps), NOTHING)
    if isinstance(plan, LoopPlan):
        return totals(plan.step) + totals(plan.body).times(plan.items)
    if isinstance(plan, ParallelPlan):
        return sum((totals(p) for p in plan.branches), totals(plan.step))
    return totals(plan.step) + _condition(plan)


def _condition(plan: ConditionPlan) -> Totals:
    then = totals(plan.then) if plan.then is not None else NOTHING
    other = totals(plan.otherwise) if plan.otherwise is not None else NOTHING
    dearer = then if then.credits_ucr.typical >= other.credits_ucr.typical else other
    if plan.then_ratio is None:
        typical_calls, typical_ucr = dearer.llm_calls.typical, dearer.credits_ucr.typical
    else:
        r = plan.then_ratio
        typical_calls = weighted_ceil(then.llm_calls.typical, r) + weighted_ceil(
            other.llm_calls.typical, 1 - r
        )
        typical_ucr = weighted_ceil(then.credits_ucr.typical, r) + weighted_ceil(
            other.credits_ucr.typical, 1 - r
        )

    def worst(a: int, b: int, typical: int) -> int:
        return max(a, b, typical)

    calls_p95 = worst(then.llm_calls.p95, other.llm_calls.p95, typical_calls)
    ucr_p95 = worst(then.credits_ucr.p95, other.credits_ucr.p95, typical_ucr)
    return Totals(
        Spread(typical_calls, calls_p95, max(then.llm_calls.max, other.llm_calls.max, calls_p95)),
        Spread(typical_ucr, ucr_p95, max(then.credits_ucr.max, other.credits_ucr.max, ucr_p95)),
    )


def node_rows(plan: Plan) -> list[NodeRow]:
    """Every node of ``plan`` in order, with its runs and its part of the run's cost."""
    return list(_rows(plan, 1, Fraction(1)))


def _rows(plan: Plan | None, runs: int, weight: Fraction) -> Iterator[NodeRow]:
    if plan is None:
        return
    if isinstance(plan, Seq):
        for part in plan.steps:
            yield from _rows(part, runs, weight)
        return
    if isinstance(plan, Step):
        yield _row(plan, runs, weight)
        return
    yield _row(plan.step, runs, weight)
    if isinstance(plan, LoopPlan):
        yield from _rows(plan.body, runs * plan.items, weight)
    elif isinstance(plan, ParallelPlan):
        for branch in plan.branches:
            yield from _rows(branch, runs, weight)
    else:
        then_share, other_share = _branch_shares(plan)
        yield from _rows(plan.then, runs, weight * then_share)
        yield from _rows(plan.otherwise, runs, weight * other_share)


def _branch_shares(plan: ConditionPlan) -> tuple[Fraction, Fraction]:
    """Each branch's weight in the typical column: the observed ratio, else all on the dearer."""
    if plan.then_ratio is not None:
        return plan.then_ratio, 1 - plan.then_ratio
    then = totals(plan.then).credits_ucr.typical if plan.then is not None else 0
    other = totals(plan.otherwise).credits_ucr.typical if plan.otherwise is not None else 0
    return (Fraction(1), Fraction(0)) if then >= other else (Fraction(0), Fraction(1))


def _row(step: Step, runs: int, weight: Fraction) -> NodeRow:
    calls, ucr = step.cost.llm_calls.times(runs), step.cost.credits_ucr.times(runs)
    return NodeRow(
        step.name,
        step.node_type,
        runs,
        Spread(weighted_ceil(calls.typical, weight), calls.p95, calls.max),
        Spread(weighted_ceil(ucr.typical, weight), ucr.p95, ucr.max),
        step.cost.source,
    )


def estimate_plan(plan: Plan) -> PlanEstimate:
    return PlanEstimate(totals(plan), node_rows(plan))
