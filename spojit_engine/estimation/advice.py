"""The cost advisor's rules. Pure: each rule takes plain numbers (µcr, counts, names) and returns a
``Suggestion`` or None — silence when the history or the workflow does not deserve one.

- ``direct_mode``: an Agent-mode Connector whose calls chose one and the same tool in at least
  ``share_percent`` of them (and at least ``calls_min`` calls) → Direct mode with that tool; saves
  the agent's typical call less a direct call, per run.
- ``cheaper_model``: a structured Transform whose model has a cheaper sibling of the same provider
  that supports what the step needs → that model; saves the difference per run.
- ``loop_multiplies``: a Loop whose body makes LLM calls → its multiplied cost, stated (saves 0:
  it is a warning, not a change).
- ``sample_test_loops``: test runs that cost more than live runs, in a workflow with loops → set
  ``test_sample``; saves the difference per test run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from spojit_engine.money import format_credits


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: str
    workflow: str
    node: str | None
    message: str
    saves_ucr: int  # per run


def direct_mode(
    workflow: str,
    node: str,
    tools: Sequence[str | None],
    *,
    agent_call_ucr: int,
    direct_call_ucr: int,
    runs: int,
    share_percent: int,
    calls_min: int,
) -> Suggestion | None:
    """``tools``: per agent call, the tools it chose (comma-separated), None when it chose none."""
    if len(tools) < calls_min:
        return None
    single = Counter(t for t in tools if t and "," not in t)
    if not single:
        return None
    tool, chosen = single.most_common(1)[0]
    if chosen * 100 < share_percent * len(tools):
        return None
    saves = max(0, agent_call_ucr - direct_call_ucr) * runs
    share = chosen * 100 // len(tools)
    return Suggestion(
        "direct_mode", workflow, node,
        f"{node}: the agent chose {tool} in {share}% of its {len(tools)} calls — use Direct mode "
        f"with {tool} and save {format_credits(saves)} credits per run.",
        saves,
    )  # fmt: skip


def cheaper_model(
    workflow: str,
    node: str,
    *,
    model: str,
    call_ucr: int,
    alternatives: Sequence[tuple[str, int]],
    runs: int,
) -> Suggestion | None:
    """``alternatives``: (model, what the same call would cost on it) for capable siblings."""
    cheaper = [(cost, name) for name, cost in alternatives if cost < call_ucr and name != model]
    if not cheaper:
        return None
    cost, name = min(cheaper)
    saves = (call_ucr - cost) * runs
    return Suggestion(
        "cheaper_model", workflow, node,
        f"{node}: {name} supports what this step needs and costs less than {model} — switch "
        f"and save {format_credits(saves)} credits per run.",
        saves,
    )  # fmt: skip


def loop_multiplies(
    workflow: str, loop: str, *, items: int, llm_calls: int, body_ucr: int
) -> Suggestion | None:
    """A loop whose body calls an LLM: the multiplied cost, in words."""
    if llm_calls <= 0 or items <= 1:
        return None
    return Suggestion(
        "loop_multiplies", workflow, loop,
        f"{loop}: a loop of {items} items runs its LLM steps {items} times — {llm_calls} LLM "
        f"calls and {format_credits(body_ucr)} credits per run; sample it in test runs "
        "(test_sample) and keep the body's model small.",
        0,
    )  # fmt: skip


def sample_test_loops(
    workflow: str,
    *,
    test_runs_ucr: Sequence[int],
    live_runs_ucr: Sequence[int],
    loops: Sequence[str],
    runs_min: int,
) -> Suggestion | None:
    """Test runs that cost more on average than live runs, in a workflow with loops."""
    if not loops or len(test_runs_ucr) < runs_min or not live_runs_ucr:
        return None
    test_mean = -(-sum(test_runs_ucr) // len(test_runs_ucr))
    live_mean = sum(live_runs_ucr) // len(live_runs_ucr)
    if test_mean <= live_mean:
        return None
    saves = test_mean - live_mean
    return Suggestion(
        "sample_test_loops", workflow, loops[0],
        f"{workflow}: test runs cost {format_credits(test_mean)} credits on average, more than "
        f"live runs ({format_credits(live_mean)}) — sample its loops in test runs "
        f"(test_sample on {', '.join(loops)}).",
        saves,
    )  # fmt: skip
