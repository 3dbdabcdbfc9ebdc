"""Reading a workflow into an estimate plan (``plans.py`` does the arithmetic): each node call
priced statically (``pricer.py``), replaced by the workspace's observed p50/p95 where it has
history for that node (``measured``). The workflow and its nodes are read through the protocols
of ``shapes.py``.

How many items a Loop runs: ``--items`` (outermost loops), else the length of its known input,
else what history shows (body calls per loop call, live runs first), else
``estimate_loop_items_default``; in a test run at most ``sample`` (else its ``test_sample``).
A Condition's branch ratio is what history shows; unknown, the dearer branch counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from spojit_engine.errors import InvalidInput
from spojit_engine.estimation.history import NodeHistory, WorkflowHistory, read_history
from spojit_engine.estimation.plans import (
    CallCost,
    ConditionPlan,
    LoopPlan,
    ParallelPlan,
    Plan,
    Seq,
    Spread,
    Step,
)
from spojit_engine.estimation.pricer import Pricer, Values, static_cost
from spojit_engine.estimation.shapes import (
    ConditionShape,
    LoopShape,
    NodeShape,
    WorkflowShape,
    is_condition,
    is_loop,
    is_parallel,
    is_trigger,
    is_variable,
)

if TYPE_CHECKING:
    from spojit_engine.metering.meter.runtime import Runtime


def _measured(static: CallCost, seen: NodeHistory) -> CallCost:
    """Observed p50/p95; the most is the larger of the static bound and the largest seen."""
    return CallCost(
        Spread.of(seen.llm_calls, bound=static.llm_calls.max),
        Spread.of(seen.credits_ucr, bound=static.credits_ucr.max),
        "measured",
    )


def first_name(node: NodeShape | None) -> str | None:
    """The name of the first node call a node makes (composite nodes call themselves first)."""
    return None if node is None else node.name


@dataclass
class Planner:
    """Turns a workflow's node tree into a plan: static costs, overridden by history."""

    pricer: Pricer
    history: WorkflowHistory
    items: int | None = None  # the item count of the outermost loops (``--items``)
    test: bool = False  # a test run: loops run on ``sample`` items, else their ``test_sample``
    sample: int | None = None
    # what each structured Transform was priced on, so the advisor can price it on other models
    seen: dict[str, Values] = field(default_factory=dict)

    def workflow(self, workflow: WorkflowShape, inputs: Any = None) -> Plan:
        values: Values = None if inputs is None else [inputs]
        steps: list[Plan] = []
        for node in workflow.steps:
            plan, values = self.node(node, values, depth=0)
            steps.append(plan)
        return Seq(tuple(steps))

    def step(self, node: NodeShape, values: Values) -> Step:
        cost = static_cost(self.pricer, node, values)
        self.seen[node.name] = values
        seen = self.history.node(node.name)
        return Step(node.name, node.node_type, _measured(cost, seen) if seen else cost)

    def node(self, node: NodeShape, values: Values, *, depth: int) -> tuple[Plan, Values]:
        """The plan of ``node`` and the sample values it passes on."""
        if is_loop(node):
            return self._loop(node, values, depth), None
        if is_condition(node):
            then = self._branch(node.then, values, depth)
            otherwise = self._branch(node.otherwise, values, depth)
            ratio = self._then_ratio(node)
            return ConditionPlan(self.step(node, values), then, otherwise, ratio), None
        if is_parallel(node):
            branches = tuple(self.node(b, values, depth=depth)[0] for b in node.branches)
            return ParallelPlan(self.step(node, values), branches), None
        step = self.step(node, values)
        if is_trigger(node):
            return step, values
        if is_variable(node) and values is not None:
            return step, [node.run(v) for v in values]
        return step, None

    def _branch(self, node: NodeShape | None, values: Values, depth: int) -> Plan | None:
        return None if node is None else self.node(node, values, depth=depth)[0]

    def _loop(self, node: LoopShape, values: Values, depth: int) -> LoopPlan:
        sample_max = self.pricer.settings.estimate_token_sample_items_max
        given = values[0] if values else None
        known = isinstance(given, Sequence) and not isinstance(given, str | bytes)
        body_values: Values = list(given[:sample_max]) if known and given else None
        if self.items is not None and depth == 0:
            items, source = self.items, "items"
        elif known:
            items, source = len(given), "input"  # type: ignore[arg-type]
        else:
            items, source = self._observed_items(node)
        cap = (self.sample or node.test_sample) if self.test else None
        if cap is not None and cap < items:
            items, source = cap, "sample"
            body_values = body_values[:cap] if body_values else body_values
        body, _ = self.node(node.body, body_values, depth=depth + 1)
        return LoopPlan(self.step(node, values), body, items, source)

    def _observed_items(self, node: LoopShape) -> tuple[int, str]:
        loop, body = self.history.node(node.name), self.history.node(node.body.name)
        if loop is None or body is None:
            return self.pricer.settings.estimate_loop_items_default, "default"
        live = loop.live_calls > 0 and body.live_calls > 0
        loops, bodies = (loop.live_calls, body.live_calls) if live else (loop.calls, body.calls)
        return -(-bodies // loops), "history"

    def _then_ratio(self, node: ConditionShape) -> Fraction | None:
        seen = self.history.node(node.name)
        if seen is None:
            return None
        then = self.history.node(first_name(node.then) or "")
        other = self.history.node(first_name(node.otherwise) or "")
        then_calls = then.calls if then else 0
        if node.otherwise is None:
            return Fraction(min(then_calls, seen.calls), seen.calls)
        total = then_calls + (other.calls if other else 0)
        return Fraction(then_calls, total) if total else None


def plan_workflow(
    workflow: WorkflowShape,
    *,
    runtime: Runtime,
    workspace_id: str | None = None,
    items: int | None = None,
    inputs: Any = None,
    test: bool = False,
    sample: int | None = None,
) -> tuple[Plan, Planner]:
    """The plan of one run of ``workflow`` (a test run: ``test``, loops on ``sample`` items) in
    the workspace (no workspace: static only), priced by its price book; and its planner.
    ``test`` and ``sample`` are checked by the caller, as a run checks them (``RunScope``)."""
    if items is not None and (isinstance(items, bool) or not isinstance(items, int) or items < 0):
        raise InvalidInput(f"items must be a whole number of zero or more, not {items!r}.")
    book, history = runtime.book, WorkflowHistory()
    if workspace_id is not None:
        _, name = runtime.workspace(workspace_id)
        book = book.for_workspace(name)
        history = read_history(
            runtime.engine.sa_engine, workspace_id=workspace_id, workflow=workflow.name,
            limit=runtime.engine.settings.estimate_history_records_max,
        )  # fmt: skip
    # As the meter does: the workspace's base prices and rate, the runtime's model price table.
    pricer = Pricer(book, runtime.prices, runtime.engine.settings)
    planner = Planner(pricer, history, items, test, sample)
    return planner.workflow(workflow, inputs), planner
