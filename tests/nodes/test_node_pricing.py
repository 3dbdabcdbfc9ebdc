"""Every node type and mode, run in a real Prefect flow, debits exactly its base price plus
ceil(LiteLLM cost x credits_per_usd) per LLM call, to the micro-credit (DESIGN.md §3-5).

The expected amounts are computed in ``node_billing`` from ``prices.toml``, ``litellm.model_cost``
and the recorded LLM responses, never through the metering code under test.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from node_billing import (
    BASE_UCR,
    UCR,
    Billed,
    LlmSpy,
    billed_workspace,
    ceil_ucr,
    credit_artifact,
    spy_on_litellm,
)
from pydantic import BaseModel

from spojit_engine import Engine
from spojit_engine.errors import UnknownModelPrice
from spojit_engine.metering.core.pricing import ModelPrice, load_price_book
from spojit_engine.metering.store.usage import UsageRow
from spojit_engine.nodes import (
    Condition,
    Connector,
    Loop,
    Node,
    Parallel,
    Response,
    Transform,
    Trigger,
    Variable,
    Workflow,
)


class Lead(BaseModel):
    name: str
    company: str
    employees: int


class Contact(BaseModel):
    name: str
    title: str | None = None


def lookup_company(company: str) -> dict[str, Any]:
    """Look up a company in the CRM."""
    return {"company": company, "employees": 250}


def score_lead(company: str) -> int:
    """Score a lead from 0 to 100."""
    return 87


def crm_lookup(value: dict[str, Any]) -> dict[str, Any]:
    """A deterministic tool for Connector direct mode."""
    return {**value, "employees": 250}


def full_type(row: UsageRow) -> str:
    return row.node_type + (f".{row.mode}" if row.mode else "")


@dataclass(frozen=True)
class Case:
    """One node type under test: the steps of its workflow and the node calls they make."""

    node_type: str
    steps: Callable[[], list[Node]]
    payload: Any
    result: Callable[[Any], bool]
    calls: dict[str, int]  # node type -> node calls in one run
    llm_calls: int = 0


CASES = [
    Case("connector.direct", lambda: [Connector("crm", crm_lookup)], {"company": "Acme"},
         lambda r: r == {"company": "Acme", "employees": 250}, {"connector.direct": 1}),
    Case("connector.agent",
         lambda: [Connector("research", mode="agent", tools=[lookup_company, score_lead])],
         {"company": "Acme"},
         lambda r: r["round_trips"] == 3 and r["tool_results"]["score_lead"] == 87,
         {"connector.agent": 1}, llm_calls=3),
    Case("transform.map", lambda: [Transform("shape", lambda v: {"who": v["name"].upper()})],
         {"name": "ana"}, lambda r: r == {"who": "ANA"}, {"transform.map": 1}),
    Case("transform.structured",
         lambda: [Transform("extract", mode="structured", schema=Lead)],
         "Ana Novak is the CTO of Acme Robotics, a company of 250 people.",
         lambda r: isinstance(r, Lead) and r.employees > 0, {"transform.structured": 1},
         llm_calls=1),
    Case("condition",
         lambda: [Condition("is-big", lambda v: v["employees"] > 100,
                            then=Variable("tier", "enterprise"),
                            otherwise=Transform("small", lambda v: "smb"))],
         {"employees": 250}, lambda r: r == {"employees": 250, "tier": "enterprise"},
         {"condition": 1, "variable": 1}),
    Case("loop", lambda: [Loop("each", Transform("upper", str.upper))], ["a", "b", "c"],
         lambda r: r == ["A", "B", "C"], {"loop": 1, "transform.map": 3}),
    Case("parallel",
         lambda: [Parallel("fan-out", [Variable("seen", True), Transform("count", len)])],
         {"a": 1}, lambda r: r == [{"a": 1, "seen": True}, 1],
         {"parallel": 1, "variable": 1, "transform.map": 1}),
    Case("trigger", lambda: [Trigger()], {"x": 1}, lambda r: r == {"x": 1}, {"trigger": 1}),
    Case("response", lambda: [Response("reply", "Hello {name}")], {"name": "Ana"},
         lambda r: r == "Hello Ana", {"response": 1}),
    Case("variable", lambda: [Variable("stage", "new")], {"id": 7},
         lambda r: r == {"id": 7, "stage": "new"}, {"variable": 1}),
]  # fmt: skip


def test_the_matrix_covers_every_node_type_but_knowledge() -> None:
    assert {c.node_type for c in CASES} == set(BASE_UCR) - {"knowledge"}


@pytest.mark.parametrize("case", CASES, ids=[c.node_type for c in CASES])
def test_a_node_debits_its_base_price_plus_each_llm_call(
    case: Case, acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch)
    before = acme.consumed_ucr()
    workflow = Workflow(f"price-{case.node_type}", case.steps())

    result = acme.run(workflow, case.payload)

    assert case.result(result), result
    assert len(spy.calls) == case.llm_calls
    llm_ucr = spy.expected_ucr()
    expected = {
        node_type: (BASE_UCR[node_type] * n + (llm_ucr if node_type == case.node_type else 0), n)
        for node_type, n in case.calls.items()
    }
    assert acme.by_node_type(workflow.name) == expected
    assert acme.consumed_ucr() - before == sum(credits for credits, _ in expected.values())

    usage = acme.usage(acme.last_flow_run_id())
    assert Counter(full_type(u) for u in usage) == case.calls
    for row in usage:
        assert (row.status, row.workflow, row.test_run) == ("ok", workflow.name, False)
        if full_type(row) == case.node_type and case.llm_calls:
            assert row.llm_calls == case.llm_calls
            assert row.models == "gpt-4o-mini"
            assert row.tokens_in == sum(c.tokens_in for c in spy.calls)
            assert row.tokens_out == sum(c.tokens_out for c in spy.calls)
            assert row.credits_ucr == BASE_UCR[case.node_type] + llm_ucr
        else:
            assert (row.llm_calls, row.tokens_in, row.models) == (0, 0, None)
            assert row.credits_ucr == BASE_UCR[full_type(row)]


def test_agent_mode_bills_each_of_its_three_round_trips(
    acme_on_each_db: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = acme_on_each_db
    spy = spy_on_litellm(monkeypatch)
    agent = Connector(
        "research", mode="agent", tools=[lookup_company, score_lead],
        instructions="Research the company with the tools, then answer in one line.",
    )  # fmt: skip

    result = acme.run(Workflow("agent-trips", [agent]), {"company": "Acme Robotics"})

    assert result["round_trips"] == 3
    assert set(result["tool_results"]) == {"lookup_company", "score_lead"}
    assert len(spy.calls) == 3
    # The first two round trips ask for a tool; the third answers.
    assert [bool(c.response.choices[0].message.tool_calls) for c in spy.calls] == [
        True,
        True,
        False,
    ]
    # Each round trip carries the previous ones: the prompt grows.
    assert spy.calls[0].tokens_in < spy.calls[1].tokens_in < spy.calls[2].tokens_in
    per_call = [c.expected_ucr() for c in spy.calls]
    # Two of the three prompts have an odd token count (7.5 µcr per gpt-4o-mini input token),
    # so rounding each call up on its own differs from rounding their sum once: this test
    # tells the two apart.
    assert sum(per_call) != ceil_ucr(sum((c.exact_usd() for c in spy.calls), Decimal(0)))
    expected = BASE_UCR["connector.agent"] + sum(per_call)
    (row,) = acme.usage()
    assert (row.llm_calls, row.credits_ucr, row.status) == (3, expected, "ok")
    assert acme.consumed_ucr() == expected
    assert acme.by_node_type("agent-trips") == {"connector.agent": (expected, 1)}


def test_an_unknown_model_fails_the_flow_and_is_never_free(
    acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch)
    node = Transform("extract", mode="structured", schema=Lead, model="not-a-real-model")

    with pytest.raises(UnknownModelPrice) as raised:
        acme.run(Workflow("unknown-model", [node]), "Ana Novak, CTO of Acme")

    assert str(raised.value) == str(UnknownModelPrice("not-a-real-model"))
    assert spy.attempts == 0  # refused before any LLM call, so nothing to bill for tokens
    # The base debit comes first (the node was admitted and started); nothing beyond it.
    assert acme.consumed_ucr() == BASE_UCR["transform.structured"]
    (row,) = acme.usage()
    assert (row.status, row.llm_calls) == ("failed", 0)
    assert row.error == f"UnknownModelPrice: {raised.value}"


def test_an_unknown_model_is_not_retried(acme: Billed) -> None:
    """A configuration error no retry can fix: retrying would only pay the base price again."""
    node = Transform("extract", mode="structured", schema=Lead, model="not-a-real-model", retries=2)

    with pytest.raises(UnknownModelPrice):
        acme.run(Workflow("unknown-model-retried", [node]), "Ana Novak, CTO of Acme")

    assert [(row.attempt, row.status) for row in acme.usage()] == [(1, "failed")]
    assert acme.consumed_ucr() == BASE_UCR["transform.structured"]


def test_an_unknown_model_is_priced_at_the_price_books_fallback(
    sqlite_engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = (Decimal("0.000011"), Decimal("0.000033"))
    book = dataclasses.replace(load_price_book(), fallback=ModelPrice(*fallback))
    spy = spy_on_litellm(monkeypatch)
    # A provider prefix, as a real custom model has: LiteLLM needs it to route even a mock.
    node = Transform("extract", mode="structured", schema=Lead, model="openai/not-a-real-model")

    with billed_workspace(sqlite_engine, book=book) as acme:
        acme.run(Workflow("fallback-model", [node]), "Ana Novak, CTO of Acme")

        (call,) = spy.calls
        llm_ucr = call.expected_ucr(fallback)
        assert llm_ucr > 0
        expected = BASE_UCR["transform.structured"] + llm_ucr
        assert acme.consumed_ucr() == expected
        (row,) = acme.usage()
        assert (row.status, row.llm_calls, row.credits_ucr) == ("ok", 1, expected)


# The matrix above runs on SQLite; this one flow runs every node type on PostgreSQL.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_whole_workflow_bills_every_node_and_publishes_its_credits(
    acme_on_each_db: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every node type in one flow; its table artifact has a row per node call, and their
    credits add up to what the ledger debited."""
    acme = acme_on_each_db
    spy = spy_on_litellm(monkeypatch)
    steps: list[Node] = [
        Trigger("start"),
        Connector("crm", crm_lookup),
        Condition("is-big", lambda v: v["employees"] > 100,
                  then=Connector("research", mode="agent", tools=[lookup_company, score_lead])),
        Parallel("fan-out", [Variable("stage", "lead"),
                             Transform("contacts", lambda r: "Ana Novak, CTO of Acme")]),
        Loop("each", Transform("extract", mode="structured", schema=Contact,
                               model="gpt-4.1-nano")),
        Response("reply", lambda v: f"{len(v)} extracted"),
    ]  # fmt: skip
    workflow = Workflow("every-node", steps)

    assert acme.run(workflow, {"company": "Acme"}) == "2 extracted"

    agent_calls = LlmSpy([c for c in spy.calls if "tools" in c.request])
    extract_calls = LlmSpy([c for c in spy.calls if "tools" not in c.request])
    assert (len(agent_calls.calls), len(extract_calls.calls)) == (3, 2)
    assert {c.model for c in extract_calls.calls} == {"gpt-4.1-nano"}
    calls = {"trigger": 1, "connector.direct": 1, "condition": 1, "connector.agent": 1,
             "parallel": 1, "variable": 1, "transform.map": 1, "loop": 1,
             "transform.structured": 2, "response": 1}  # fmt: skip
    llm_ucr = {
        "connector.agent": agent_calls.expected_ucr(),
        "transform.structured": extract_calls.expected_ucr(),
    }
    expected = {t: (BASE_UCR[t] * n + llm_ucr.get(t, 0), n) for t, n in calls.items()}
    assert acme.by_node_type("every-node") == expected
    total_ucr = sum(credits for credits, _ in expected.values())
    assert acme.consumed_ucr() == total_ucr

    flow_run_id = acme.last_flow_run_id()
    usage = acme.usage(flow_run_id)
    assert len(usage) == sum(calls.values()) == 11
    artifact = credit_artifact(flow_run_id)
    assert sorted((r["node"], r["type"], r["attempt"], r["status"]) for r in artifact.rows) == (
        sorted((u.node_name, full_type(u), 1, "ok") for u in usage)
    )
    credits_of: dict[str, list[int]] = {}
    for r in artifact.rows:
        credits_of.setdefault(r["node"], []).append(int(Decimal(r["credits"]) * UCR))
    assert credits_of["research"] == [BASE_UCR["connector.agent"] + llm_ucr["connector.agent"]]
    assert credits_of["start"] == [BASE_UCR["trigger"]]
    assert sorted(credits_of["extract"]) == sorted(
        BASE_UCR["transform.structured"] + c.expected_ucr() for c in extract_calls.calls
    )
    assert sum(sum(v) for v in credits_of.values()) == total_ucr
    assert artifact.total * UCR == total_ucr
    assert sum(r["tokens_in"] for r in artifact.rows) == sum(c.tokens_in for c in spy.calls)
