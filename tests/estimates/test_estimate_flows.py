"""Estimates and advice against real runs: real Prefect flows, the mock LLM (usage from
``litellm.token_counter``), the real price book, a real SQLite ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from spojit_engine import Engine
from spojit_engine.cli.runner import EXAMPLES, load_flow
from spojit_engine.metering.core.pricing import load_price_book
from spojit_engine.metering.meter.runtime import Runtime, use_runtime
from spojit_engine.metering.store.usage import read_usage
from spojit_engine.money import ucr_to_credits
from spojit_engine.nodes import Connector, Loop, Response, Transform, Workflow


def lookup(domain: str) -> dict[str, str]:
    """Look up a company by its domain."""
    return {"domain": domain, "company": domain.split(".")[0].title()}


def contact(company: str) -> dict[str, str]:
    """Find a contact at a company."""
    return {"company": company, "contact": "Ana Novak"}


class Person(BaseModel):
    name: str
    title: str


LEADS = [{"domain": f"firm-{i}.example"} for i in range(3)]


@pytest.fixture
def acme(sqlite_engine: Engine, prefect_harness: None) -> Iterator[tuple[Engine, str]]:
    ws = sqlite_engine.create_workspace("acme", plan="starter")
    with use_runtime(Runtime.create(sqlite_engine)):
        yield sqlite_engine, ws.id
    assert sqlite_engine.verify() >= 1


def run_cost(engine: Engine, ws: str, workflow: Workflow, payload: Any, *, test: bool = False
             ) -> Decimal:  # fmt: skip
    before = engine.balance(ws).consumed
    workflow.run(payload, workspace="acme", test=test)
    return engine.balance(ws).consumed - before


def within(estimate: Decimal, actual: Decimal, percent: int) -> bool:
    return abs(estimate - actual) * 100 <= actual * percent


@pytest.mark.parametrize("example", EXAMPLES)
def test_estimates_of_the_examples_match_their_offline_runs(
    acme: tuple[Engine, str], example: str
) -> None:
    engine, ws = acme
    loaded = load_flow(example)
    static = engine.estimate(None, loaded.workflow, inputs=loaded.sample_input)
    run_cost(engine, ws, loaded.workflow, loaded.sample_input)  # history (and the index, once)
    measured = engine.estimate(ws, loaded.workflow, inputs=loaded.sample_input)
    actual = run_cost(engine, ws, loaded.workflow, loaded.sample_input)

    assert {n.source for n in static.nodes} == {"static"}
    ran = {row.node_name for row in read_usage(engine.sa_engine, workspace_id=ws)}
    assert all((n.source == "measured") == (n.name in ran) for n in measured.nodes)
    assert within(measured.total.credits.typical, actual, 15), (measured.total, actual)
    assert measured.total.credits.p95 >= actual
    assert within(static.total.credits.typical, actual, 30), (static.total, actual)


def test_a_loop_of_1000_items_over_an_agent_is_at_least_1000_llm_calls(
    sqlite_engine: Engine,
) -> None:
    agent = Connector("enrich", mode="agent", tools=[lookup, contact], max_round_trips=4)
    workflow = Workflow("big_loop", [Loop("each lead", agent)])
    est = sqlite_engine.estimate(None, workflow, items=1000, inputs=LEADS)

    book = load_price_book()
    assert est.total.llm_calls.typical == 1000 * 3  # each tool once, then the answer
    assert est.total.llm_calls.max == 1000 * 4  # the configured maximum
    _, agent_row = est.nodes
    assert agent_row.runs == 1000
    per_call = agent_row.credits.typical / 1000
    assert per_call > ucr_to_credits(book.base("connector.agent"))  # base + the round trips
    assert est.total.credits.typical == ucr_to_credits(book.base("loop")) + 1000 * per_call
    assert est.advice[0].kind == "loop_multiplies" and "1000" in est.advice[0].message
    with use_runtime(Runtime.create(sqlite_engine)):
        assert workflow.estimate(items=1000, inputs=LEADS).total == est.total


def test_a_test_run_estimate_counts_only_the_sampled_items(sqlite_engine: Engine) -> None:
    from spojit_engine.errors import InvalidInput

    loaded = load_flow("lead_enrichment")  # test_sample=2 on its loop; three sample leads

    def agent_runs(**scope: Any) -> int:
        est = sqlite_engine.estimate(None, loaded.workflow, inputs=loaded.sample_input, **scope)
        return next(n.runs for n in est.nodes if n.node_type == "connector.agent")

    assert agent_runs() == 3
    assert agent_runs(test=True) == 2
    assert agent_runs(test=True, sample=1) == 1
    assert agent_runs(test=True, sample=10) == 3
    with pytest.raises(InvalidInput):
        agent_runs(sample=1)  # a sample scopes a test run only


def test_the_advisor_says_direct_mode_for_an_agent_that_always_picks_one_tool(
    acme: tuple[Engine, str],
) -> None:
    engine, ws = acme
    single = Workflow("one_tool", [Loop("each", Connector("agent", mode="agent", tools=[lookup]))])
    run_cost(engine, ws, single, LEADS)
    advice = {a.kind: a for a in engine.estimate(ws, single, inputs=LEADS).advice}
    assert advice["direct_mode"].node == "agent" and advice["direct_mode"].saves_per_run > 0
    assert [a.kind for a in engine.advice(ws, "one_tool")] == ["direct_mode"]

    double = Workflow("two_tools", [Loop("each", Connector("agent", mode="agent",
                                                           tools=[lookup, contact]))])  # fmt: skip
    run_cost(engine, ws, double, LEADS)
    assert "direct_mode" not in {a.kind for a in engine.estimate(ws, double, inputs=LEADS).advice}
    assert engine.advice(ws, "two_tools") == []


def test_the_advisor_asks_to_sample_loops_when_test_runs_cost_more_than_live_runs(
    acme: tuple[Engine, str],
) -> None:
    engine, ws = acme
    workflow = Workflow("designer", [Loop("each", Connector("fetch", dict)), Response("done")])
    for _ in range(3):
        run_cost(engine, ws, workflow, LEADS, test=True)
    run_cost(engine, ws, workflow, LEADS[:1])
    [advice] = engine.advice(ws, "designer")
    assert advice.kind == "sample_test_loops" and "each" in advice.message
    assert advice.saves_per_run == Decimal(2)  # two fewer direct calls of 1 credit

    run_cost(engine, ws, workflow, LEADS * 2)  # live runs now cost more on average
    run_cost(engine, ws, workflow, LEADS * 2)
    assert engine.advice(ws, "designer") == []


def test_the_advisor_suggests_a_cheaper_capable_model_for_a_dear_structured_step(
    sqlite_engine: Engine,
) -> None:
    text = "Ana Novak is the Head of Operations at Northwind Logistics. " * 40

    def extract(model: str) -> Workflow:
        step = Transform("extract", mode="structured", schema=Person, model=model)
        return Workflow(f"extract_{model.replace('.', '_')}", [step])

    [dear] = sqlite_engine.estimate(None, extract("gpt-4o"), inputs=text).advice
    assert dear.kind == "cheaper_model" and dear.node == "extract" and dear.saves_per_run > 0
    assert dear.message.startswith("extract: gpt-4o-mini supports")  # not a reasoning model
    assert sqlite_engine.estimate(None, extract("gpt-4o-mini"), inputs=text).advice == []


def test_examples_without_anything_to_advise_stay_silent(sqlite_engine: Engine) -> None:
    for example in ("nightly_digest", "support_triage"):
        loaded = load_flow(example)
        assert (
            sqlite_engine.estimate(None, loaded.workflow, inputs=loaded.sample_input).advice == []
        )


def test_spojit_estimate_prints_json_and_refuses_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spojit_engine.cli.app import app

    monkeypatch.setenv("SPOJIT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    result = runner.invoke(app, ["estimate", "lead_enrichment", "--items", "1000", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["total"]["llm_calls"]["typical"] >= 1000
    assert Decimal(body["total"]["credits"]["typical"]) <= Decimal(body["total"]["credits"]["p95"])
    assert {n["source"] for n in body["nodes"]} == {"static"}
    assert body["advice"][0]["kind"] == "loop_multiplies"

    sampled = runner.invoke(app, ["estimate", "lead_enrichment", "--test", "--sample", "1",
                                  "--json"])  # fmt: skip
    assert sampled.exit_code == 0 and json.loads(sampled.output)["test_run"] is True
    assert json.loads(sampled.output)["total"]["llm_calls"]["typical"] == 3  # one lead

    table = runner.invoke(app, ["estimate", "nightly_digest"])
    assert table.exit_code == 0 and "Total" in table.output

    bad = runner.invoke(app, ["estimate", "lead_enrichment", "--input", "{not json"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
