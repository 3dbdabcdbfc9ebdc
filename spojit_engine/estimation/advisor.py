"""The cost advisor over a workflow (its node tree, its plan and its history) or over history
alone (``Engine.advice`` for workflows it only knows by name). The rules are pure
(``advice.py``); this module finds the numbers they need.

A cheaper model is a sibling of the same LiteLLM provider: a chat model that supports JSON schema
answers (``supports_response_schema`` in LiteLLM's model info — what a structured step needs),
not deprecated by today, not special-purpose (search, audio…), not a reasoning model unless the
step's own model is one, cheaper per input and per output token, and whose saving on the whole
node call is at least ``advice_savings_percent_min``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from spojit_engine.clock import utcnow
from spojit_engine.estimation import advice
from spojit_engine.estimation.advice import Suggestion
from spojit_engine.estimation.history import WorkflowHistory
from spojit_engine.estimation.planner import Planner
from spojit_engine.estimation.plans import (
    ConditionPlan,
    LoopPlan,
    ParallelPlan,
    Plan,
    Seq,
    node_rows,
    totals,
)
from spojit_engine.estimation.pricer import structured_cost
from spojit_engine.estimation.shapes import (
    NodeShape,
    StructuredShape,
    WorkflowShape,
    children,
    is_agent,
    is_loop,
    is_structured,
)

CANDIDATES_PRICED_MAX = 5  # cheapest capable siblings priced per step
# chat models built for one purpose (web search, audio, live sessions): not a drop-in swap
SPECIAL_PURPOSE = ("search", "audio", "realtime", "transcribe", "tts")


def walk(nodes: Sequence[NodeShape]) -> Iterator[NodeShape]:
    """Every node of a tree, parents first."""
    for node in nodes:
        yield node
        yield from walk(children(node))


def _loops(plan: Plan | None) -> Iterator[LoopPlan]:
    if isinstance(plan, Seq):
        for part in plan.steps:
            yield from _loops(part)
    elif isinstance(plan, LoopPlan):
        yield plan
        yield from _loops(plan.body)
    elif isinstance(plan, ParallelPlan):
        for branch in plan.branches:
            yield from _loops(branch)
    elif isinstance(plan, ConditionPlan):
        yield from _loops(plan.then)
        yield from _loops(plan.otherwise)


def advise_workflow(workflow: WorkflowShape, plan: Plan, planner: Planner) -> list[Suggestion]:
    """Every rule over one workflow, in the order its nodes run."""
    rows = {row.name: row for row in node_rows(plan)}
    settings, found = planner.pricer.settings, []
    for node in walk(workflow.steps):
        row = rows.get(node.name)
        if row is None or row.runs == 0:
            continue
        per_call = row.credits_ucr.typical // row.runs
        if is_agent(node):
            seen = planner.history.node(node.name)
            found.append(advice.direct_mode(
                workflow.name, node.name, seen.tools if seen else [],
                agent_call_ucr=per_call,
                direct_call_ucr=planner.pricer.book.base("connector.direct"), runs=row.runs,
                share_percent=settings.advice_direct_mode_share_percent,
                calls_min=settings.advice_history_calls_min,
            ))  # fmt: skip
        elif is_structured(node):
            found.append(_cheaper_model(workflow.name, node, planner, row.runs))
    for loop in _loops(plan):
        body = totals(loop.body)
        found.append(advice.loop_multiplies(
            workflow.name, loop.step.name, items=loop.items,
            llm_calls=body.llm_calls.typical * loop.items,
            body_ucr=body.credits_ucr.typical * loop.items,
        ))  # fmt: skip
    loops = [n.name for n in walk(workflow.steps) if is_loop(n)]
    found.append(
        _test_runs(workflow.name, planner.history, loops, settings.advice_history_calls_min)
    )
    return [s for s in found if s is not None]


def _test_runs(
    workflow: str, history: WorkflowHistory, loops: list[str], runs_min: int
) -> Suggestion | None:
    runs = history.runs.values()
    return advice.sample_test_loops(
        workflow,
        test_runs_ucr=[r.credits_ucr for r in runs if r.test_run],
        live_runs_ucr=[r.credits_ucr for r in runs if not r.test_run],
        loops=loops,
        runs_min=runs_min,
    )


def _cheaper_model(
    workflow: str, node: StructuredShape, planner: Planner, runs: int
) -> Suggestion | None:
    pricer, values = planner.pricer, planner.seen.get(node.name)
    (_, _), (current, _) = structured_cost(pricer, node, values)
    base = pricer.book.base(node.node_type)
    priced = [
        (m, structured_cost(pricer, node, values, model=m)[1][0]) for m in _siblings(node.model)
    ]
    floor = pricer.settings.advice_savings_percent_min
    worth = [(m, c) for m, c in priced if (current - c) * 100 >= floor * (base + current)]
    return advice.cheaper_model(
        workflow, node.name, model=node.model, call_ucr=current, alternatives=worth, runs=runs
    )


def _siblings(model: str) -> list[str]:
    """Capable, cheaper chat models of the same provider, cheapest first (a few)."""
    from spojit_engine.llm import litellm_module

    table: dict[str, Any] = litellm_module().model_cost
    own = table.get(model) or table.get(model.split("/", 1)[-1])
    if not own or own.get("input_cost_per_token") is None:
        return []
    found, today = [], utcnow().date().isoformat()
    for name, info in table.items():
        if (
            info.get("litellm_provider") == own.get("litellm_provider")
            and info.get("mode") == "chat"
            and info.get("supports_response_schema")
            and str(info.get("deprecation_date") or "9999") > today
            and not name.startswith("ft:")  # someone's fine-tune, not a model to switch to
            and not any(marker in name for marker in SPECIAL_PURPOSE)
            # a reasoning model bills hidden reasoning tokens: not a like-for-like swap
            and bool(info.get("supports_reasoning")) <= bool(own.get("supports_reasoning"))
            and info.get("input_cost_per_token") is not None
            and info.get("output_cost_per_token") is not None
            and info["input_cost_per_token"] < own["input_cost_per_token"]
            and info["output_cost_per_token"] <= own.get("output_cost_per_token", 0)
        ):
            found.append((info["input_cost_per_token"], name))
    return [name for _, name in sorted(found)[:CANDIDATES_PRICED_MAX]]


def advise_history(
    workflow: str, history: WorkflowHistory, *, direct_call_ucr: int, share_percent: int,
    calls_min: int,
) -> list[Suggestion]:  # fmt: skip
    """The rules history alone can judge: Direct mode, and test runs dearer than live runs."""
    found = []
    for name, seen in history.nodes.items():
        if seen.node_type == "connector.agent" and seen.calls:
            per_run = -(-seen.calls // max(1, len(seen.runs)))
            agent = sorted(seen.credits_ucr)[len(seen.credits_ucr) // 2]
            found.append(advice.direct_mode(
                workflow, name, seen.tools, agent_call_ucr=agent, direct_call_ucr=direct_call_ucr,
                runs=per_run, share_percent=share_percent, calls_min=calls_min,
            ))  # fmt: skip
    loops = sorted(n for n, s in history.nodes.items() if s.node_type == "loop")
    found.append(_test_runs(workflow, history, loops, calls_min))
    return [s for s in found if s is not None]
