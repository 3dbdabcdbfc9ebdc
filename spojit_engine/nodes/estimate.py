"""Reading a workflow into an estimate plan (``estimation/plans.py`` does the arithmetic).

Each node call is priced the way the meter prices it — the node's base price from the price book,
plus every LLM call at ``llm_cost_ucr`` with the same model price table — with prompt tokens
counted by ``litellm.token_counter`` on the prompts the node would send. Where the workspace has
history for a node, its observed p50/p95 replace the static numbers (``measured``).

Static assumptions, each a setting: an agent's typical round trips are each tool once and then an
answer (p95 and max: ``max_round_trips``); a typical LLM answer is
``estimate_output_tokens_typical`` tokens (a structured Transform: the JSON of its schema), the
most is ``max_tokens``; static p95 is the most. A value known only at run time (a step's output)
counts as ``estimate_input_tokens_unknown`` prompt tokens; Knowledge passages as
``estimate_passage_tokens`` each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from spojit_engine.estimation.history import NodeHistory, WorkflowHistory, read_history
from spojit_engine.estimation.plans import (
    CallCost,
    ConditionPlan,
    LoopPlan,
    ParallelPlan,
    Plan,
    PlanEstimate,
    Seq,
    Spread,
    Step,
    estimate_plan,
)
from spojit_engine.metering.core.model_prices import ModelPriceTable
from spojit_engine.metering.core.pricing import PriceBook, TokenUsage, llm_cost_ucr
from spojit_engine.metering.meter.runtime import Runtime
from spojit_engine.nodes.base import Node
from spojit_engine.nodes.connector import Connector
from spojit_engine.nodes.control import Condition, Loop, Parallel
from spojit_engine.nodes.knowledge import Knowledge, prompt
from spojit_engine.nodes.mock_values import example_of
from spojit_engine.nodes.nominal import Trigger, Variable
from spojit_engine.nodes.transform import Transform
from spojit_engine.nodes.workflow import Workflow
from spojit_engine.settings import Settings

Values = list[Any] | None  # sample inputs a node will see, or None when known only at run time


def _mean_ceil(values: Sequence[int]) -> int:
    return -(-sum(values) // len(values))


@dataclass
class Pricer:
    """Token counts and LLM call prices, the way ``llm.py`` and the meter compute them."""

    book: PriceBook
    prices: ModelPriceTable
    settings: Settings

    def call_ucr(self, model: str, tokens_in: int, tokens_out: int) -> int:
        usage = TokenUsage(model, tokens_in, tokens_out)
        return llm_cost_ucr(self.prices.price(model), usage, self.book.credits_per_usd)

    def tokens(self, model: str, *, messages: Any = None, text: str | None = None) -> int:
        from spojit_engine.llm import litellm_module

        litellm = litellm_module()
        if messages is not None:
            return int(litellm.token_counter(model=model, messages=messages))
        return int(litellm.token_counter(model=model, text=text or ""))

    def prompt_tokens(self, model: str, values: Values, messages_of: Any) -> tuple[int, int]:
        """(typical, most) prompt tokens over the sample inputs; unknown input adds the setting."""
        if values is None:
            unknown = self.settings.estimate_input_tokens_unknown
            n = self.tokens(model, messages=messages_of("")) + unknown
            return n, n
        counts = [self.tokens(model, messages=messages_of(v)) for v in values]
        return _mean_ceil(counts), max(counts)

    def typical_out(self, max_tokens: int) -> int:
        return min(max_tokens, self.settings.estimate_output_tokens_typical)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _static(pricer: Pricer, node: Node, values: Values) -> CallCost:
    """One call of ``node`` from its prompts and the price book."""
    base = pricer.book.base(node.node_type)
    calls, ucr = (0, 0), (0, 0)
    if isinstance(node, Connector) and node.mode == "agent":
        calls, ucr = _agent(pricer, node, values)
    elif isinstance(node, Transform) and node.mode == "structured":
        calls, ucr = structured_cost(pricer, node, values)
    elif isinstance(node, Knowledge):
        calls, ucr = _knowledge(pricer, node, values)
    typical_ucr, max_ucr = base + ucr[0], base + ucr[1]
    return CallCost(Spread(calls[0], calls[1], calls[1]), Spread(typical_ucr, max_ucr, max_ucr))


def _agent(pricer: Pricer, node: Connector, values: Values) -> tuple[tuple[int, int], ...]:
    def messages(v: Any) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": node.instructions},
            {"role": "user", "content": json.dumps(v, default=str)},
        ]

    typical_in, max_in = pricer.prompt_tokens(node.model, values, messages)
    exchange = pricer.settings.estimate_tool_exchange_tokens
    trips = min(len(node.tools) + 1, node.max_round_trips)
    out = pricer.typical_out(node.max_tokens)
    typical = sum(pricer.call_ucr(node.model, typical_in + k * exchange, out) for k in range(trips))
    most = sum(
        pricer.call_ucr(node.model, max_in + k * exchange, node.max_tokens)
        for k in range(node.max_round_trips)
    )
    return (trips, node.max_round_trips), (typical, most)


def structured_cost(
    pricer: Pricer, node: Transform, values: Values, model: str | None = None
) -> tuple[tuple[int, int], ...]:
    """A structured Transform's LLM call (on ``model``, default the node's own)."""
    assert node.schema is not None
    schema, model = node.schema, model or node.model

    def messages(v: Any) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": node._system_prompt},
            {"role": "user", "content": _text(v)},
        ]

    typical_in, max_in = pricer.prompt_tokens(model, values, messages)
    answers = [json.dumps(example_of(schema, _text(v))) for v in (values or [""])]
    out = _mean_ceil([pricer.tokens(model, text=a) for a in answers])
    typical = pricer.call_ucr(model, typical_in, min(out, node.max_tokens))
    return (1, 1), (typical, pricer.call_ucr(model, max_in, node.max_tokens))


def _knowledge(pricer: Pricer, node: Knowledge, values: Values) -> tuple[tuple[int, int], ...]:
    questions = [_text(v.get("question", v) if isinstance(v, dict) else v) for v in values or []]
    unknown = pricer.settings.estimate_input_tokens_unknown
    embedded = [pricer.tokens(node.embedding_model, text=q) for q in questions] or [unknown]
    embed_typical = pricer.call_ucr(node.embedding_model, _mean_ceil(embedded), 0)
    embed_max = pricer.call_ucr(node.embedding_model, max(embedded), 0)
    passages = node.k * pricer.settings.estimate_passage_tokens

    def messages(q: Any) -> list[dict[str, Any]]:
        return prompt(node.instructions, _text(q), [])

    typical_in, max_in = pricer.prompt_tokens(node.model, questions or None, messages)
    out = pricer.typical_out(node.max_tokens)
    typical = embed_typical + pricer.call_ucr(node.model, typical_in + passages, out)
    most = embed_max + pricer.call_ucr(node.model, max_in + passages, node.max_tokens)
    return (2, 2), (typical, most)


def _measured(static: CallCost, seen: NodeHistory) -> CallCost:
    """Observed p50/p95; the most is the larger of the static bound and the largest seen."""
    return CallCost(
        Spread.of(seen.llm_calls, bound=static.llm_calls.max),
        Spread.of(seen.credits_ucr, bound=static.credits_ucr.max),
        "measured",
    )


def first_name(node: Node | None) -> str | None:
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

    def workflow(self, workflow: Workflow, inputs: Any = None) -> Plan:
        values: Values = None if inputs is None else [inputs]
        steps: list[Plan] = []
        for node in workflow.steps:
            plan, values = self.node(node, values, depth=0)
            steps.append(plan)
        return Seq(tuple(steps))

    def step(self, node: Node, values: Values) -> Step:
        cost = _static(self.pricer, node, values)
        self.seen[node.name] = values
        seen = self.history.node(node.name)
        return Step(node.name, node.node_type, _measured(cost, seen) if seen else cost)

    def node(self, node: Node, values: Values, *, depth: int) -> tuple[Plan, Values]:
        """The plan of ``node`` and the sample values it passes on."""
        if isinstance(node, Loop):
            return self._loop(node, values, depth), None
        if isinstance(node, Condition):
            then = self._branch(node.then, values, depth)
            otherwise = self._branch(node.otherwise, values, depth)
            ratio = self._then_ratio(node)
            return ConditionPlan(self.step(node, values), then, otherwise, ratio), None
        if isinstance(node, Parallel):
            branches = tuple(self.node(b, values, depth=depth)[0] for b in node.branches)
            return ParallelPlan(self.step(node, values), branches), None
        step = self.step(node, values)
        if isinstance(node, Trigger):
            return step, values
        if isinstance(node, Variable) and values is not None:
            return step, [node.run(v) for v in values]
        return step, None

    def _branch(self, node: Node | None, values: Values, depth: int) -> Plan | None:
        return None if node is None else self.node(node, values, depth=depth)[0]

    def _loop(self, node: Loop, values: Values, depth: int) -> LoopPlan:
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

    def _observed_items(self, node: Loop) -> tuple[int, str]:
        loop, body = self.history.node(node.name), self.history.node(node.body.name)
        if loop is None or body is None:
            return self.pricer.settings.estimate_loop_items_default, "default"
        live = loop.live_calls > 0 and body.live_calls > 0
        loops, bodies = (loop.live_calls, body.live_calls) if live else (loop.calls, body.calls)
        return -(-bodies // loops), "history"

    def _then_ratio(self, node: Condition) -> Fraction | None:
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
    workflow: Workflow,
    *,
    runtime: Runtime,
    workspace_id: str | None = None,
    items: int | None = None,
    inputs: Any = None,
    test: bool = False,
    sample: int | None = None,
) -> tuple[Plan, Planner]:
    """The plan of one run of ``workflow`` (a test run: ``test``, loops on ``sample`` items) in
    the workspace (no workspace: static only), priced by its price book; and its planner."""
    from spojit_engine.errors import InvalidInput
    from spojit_engine.nodes.scope import RunScope

    RunScope.of(test=test, sample=sample)  # the same checks as the run's own

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


def estimate_workflow(
    workflow: Workflow,
    *,
    runtime: Runtime,
    workspace_id: str | None = None,
    items: int | None = None,
    inputs: Any = None,
    test: bool = False,
    sample: int | None = None,
) -> PlanEstimate:
    """What one run of ``workflow`` will cost, in µcr and LLM calls (reservations hold this)."""
    plan, _ = plan_workflow(
        workflow, runtime=runtime, workspace_id=workspace_id, items=items, inputs=inputs,
        test=test, sample=sample,
    )  # fmt: skip
    return estimate_plan(plan)
