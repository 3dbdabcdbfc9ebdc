"""The estimate arithmetic (pure): its rules as hypothesis properties, and the advisor's rules."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.estimation import advice
from spojit_engine.estimation.plans import (
    CallCost,
    ConditionPlan,
    LoopPlan,
    ParallelPlan,
    Plan,
    Seq,
    Spread,
    Step,
    percentile,
    totals,
    weighted_ceil,
)

EXAMPLES = settings(max_examples=100, deadline=None)


@st.composite
def spreads(draw: st.DrawFn, top: int = 10**9) -> Spread:
    a, b, c = sorted(draw(st.integers(0, top)) for _ in range(3))
    return Spread(a, b, c)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    cost = CallCost(draw(spreads(50)), draw(spreads()))
    return Step(draw(st.text(min_size=1, max_size=5)), "connector.agent", cost)


def plans(depth: int = 3) -> st.SearchStrategy[Plan]:
    leaf: st.SearchStrategy[Plan] = steps()
    if depth == 0:
        return leaf
    inner = plans(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: Seq(tuple(ps))),
        st.builds(LoopPlan, steps(), inner, st.integers(0, 50)),
        st.builds(ParallelPlan, steps(), st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(
            ConditionPlan,
            steps(),
            st.none() | inner,
            st.none() | inner,
            st.none() | st.fractions(0, 1, max_denominator=100),
        ),
    )


def ordered(spread: Spread) -> bool:
    return 0 <= spread.typical <= spread.p95 <= spread.max


@EXAMPLES
@given(plans())
def test_typical_is_at_most_p95_and_p95_at_most_max(plan: Plan) -> None:
    total = totals(plan)
    assert ordered(total.llm_calls) and ordered(total.credits_ucr)


@EXAMPLES
@given(steps(), plans(2), st.integers(0, 1000), st.integers(0, 1000))
def test_a_loop_is_n_times_its_body_and_monotone_in_items(
    step: Step, body: Plan, n: int, more: int
) -> None:
    loop, bigger = LoopPlan(step, body, n), LoopPlan(step, body, n + more)
    own, inner = totals(step), totals(body)
    assert totals(loop) == own + inner.times(n)
    for column in ("typical", "p95", "max"):
        small, big = totals(loop).credits_ucr, totals(bigger).credits_ucr
        assert getattr(small, column) <= getattr(big, column)


@EXAMPLES
@given(steps(), st.lists(plans(2), min_size=1, max_size=4))
def test_a_parallel_is_the_sum_of_its_branches(step: Step, branches: list[Plan]) -> None:
    expected = totals(step)
    for branch in branches:
        expected = expected + totals(branch)
    assert totals(ParallelPlan(step, tuple(branches))) == expected


@EXAMPLES
@given(steps(), plans(1), plans(1), st.fractions(0, 1, max_denominator=1000))
def test_a_condition_weighs_typical_and_takes_the_dearer_branch_for_p95(
    step: Step, then: Plan, other: Plan, ratio: Fraction
) -> None:
    a, b = totals(then).credits_ucr, totals(other).credits_ucr
    weighted = totals(ConditionPlan(step, then, other, ratio)).credits_ucr
    unknown = totals(ConditionPlan(step, then, other, None)).credits_ucr
    base = step.cost.credits_ucr
    assert weighted.typical == base.typical + weighted_ceil(a.typical, ratio) + weighted_ceil(
        b.typical, 1 - ratio
    )
    assert unknown.typical == base.typical + max(a.typical, b.typical)
    assert weighted.p95 >= base.p95 + max(a.p95, b.p95)
    assert weighted.max >= base.max + max(a.max, b.max)


@EXAMPLES
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=200))
def test_percentiles_are_samples_in_order(samples: list[int]) -> None:
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    assert p50 in samples and p95 in samples and p50 <= p95 <= max(samples)
    spread = Spread.of(samples, bound=0)
    assert ordered(spread) and spread.max == max(samples)


@EXAMPLES
@given(st.integers(0, 10**15), st.fractions(0, 1, max_denominator=10**6))
def test_weighted_amounts_round_up_by_less_than_one_unit(value: int, weight: Fraction) -> None:
    """The one rounding rule of estimates: a weighted µcr (or call) count is rounded up."""
    rounded = weighted_ceil(value, weight)
    assert value * weight <= rounded < value * weight + 1
    assert weighted_ceil(10, Fraction(1, 3)) == 4 and weighted_ceil(9, Fraction(1, 3)) == 3


# -- the advisor's rules ---------------------------------------------------------------------


def _direct(tools: list[str | None]) -> advice.Suggestion | None:
    return advice.direct_mode(
        "wf", "agent", tools, agent_call_ucr=1_200_000, direct_call_ucr=1_000_000, runs=10,
        share_percent=90, calls_min=3,
    )  # fmt: skip


def test_direct_mode_speaks_when_one_tool_is_chosen_in_90_percent_of_calls() -> None:
    found = _direct(["lookup"] * 9 + ["lookup,search"])
    assert found is not None and found.kind == "direct_mode"
    assert found.saves_ucr == 10 * 200_000 and "lookup" in found.message


def test_direct_mode_is_silent_below_90_percent_or_without_history() -> None:
    assert _direct(["lookup"] * 8 + ["search"] * 2) is None
    assert _direct(["lookup,search"] * 10) is None
    assert _direct(["lookup"] * 2) is None
    assert _direct([None] * 10) is None


def test_cheaper_model_picks_the_cheapest_capable_sibling() -> None:
    found = advice.cheaper_model(
        "wf", "extract", model="big", call_ucr=500, alternatives=[("mid", 300), ("small", 100)],
        runs=2,
    )  # fmt: skip
    assert found is not None and "small" in found.message and found.saves_ucr == 800
    assert advice.cheaper_model("wf", "x", model="m", call_ucr=5, alternatives=[], runs=1) is None


def test_test_runs_dearer_than_live_runs_ask_for_sampled_loops() -> None:
    found = advice.sample_test_loops(
        "wf", test_runs_ucr=[900, 1100, 1000], live_runs_ucr=[400], loops=["each"], runs_min=3
    )
    assert found is not None and found.saves_ucr == 600 and "test_sample" in found.message
    cheaper = advice.sample_test_loops(
        "wf", test_runs_ucr=[100, 100, 100], live_runs_ucr=[400], loops=["each"], runs_min=3
    )
    assert cheaper is None
    no_loops = advice.sample_test_loops(
        "wf", test_runs_ucr=[900] * 3, live_runs_ucr=[400], loops=[], runs_min=3
    )
    assert no_loops is None
