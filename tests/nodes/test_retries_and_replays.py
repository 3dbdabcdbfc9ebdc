"""A retried node bills each attempt it actually made; re-running the same attempt (same task run,
same run count, so the same idempotency keys) bills nothing new (DESIGN.md §5)."""

from __future__ import annotations

from typing import Any

import pytest
from node_billing import (
    BASE_UCR,
    Billed,
    Person,
    forget_call_numbers,
    spojit_tags,
    spy_on_litellm,
    task_runs,
)
from prefect import flow, task

from spojit_engine.nodes import Connector, Transform, Workflow

TEXT = "Ana Novak is the CTO of Acme Robotics."


def test_a_retried_node_bills_each_attempt_it_made(acme: Billed) -> None:
    calls: list[str] = []

    def normalise(value: str) -> str:
        calls.append(value)
        if len(calls) == 1:
            raise ConnectionError("the CRM timed out")
        return value.upper()

    workflow = Workflow("flaky-map", [Transform("normalise", normalise, retries=1)])

    assert acme.run(workflow, "acme") == "ACME"

    base = BASE_UCR["transform.map"]
    first, second = acme.usage()
    assert (first.attempt, first.status, first.credits_ucr) == (1, "failed", base)
    assert first.error == "ConnectionError: the CRM timed out"
    assert (second.attempt, second.status, second.credits_ucr) == (2, "ok", base)
    assert first.task_run_id == second.task_run_id  # one task run, two attempts
    assert first.key != second.key
    assert acme.consumed_ucr() == 2 * base
    assert acme.by_node_type("flaky-map") == {"transform.map": (2 * base, 2)}
    assert second.flow_run_id is not None
    (task_run,) = task_runs(second.flow_run_id)
    assert (task_run.run_count, task_run.state.is_completed()) == (2, True)


def test_an_llm_node_failing_after_its_call_is_billed_for_that_call(
    acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch)
    lookups: list[str] = []

    def lookup_company(company: str) -> dict[str, Any]:
        """Look up a company in the CRM."""
        lookups.append(company)
        if len(lookups) == 1:
            raise TimeoutError("the CRM timed out")
        return {"company": company, "employees": 250}

    agent = Connector("research", mode="agent", tools=[lookup_company], retries=1)

    result = acme.run(Workflow("flaky-agent", [agent]), {"company": "Acme"})

    assert result["round_trips"] == 2
    # Attempt 1: the LLM chose the tool, the tool failed. Attempt 2: tool call, then the answer.
    assert len(spy.calls) == 3
    cost = [call.expected_ucr() for call in spy.calls]
    base = BASE_UCR["connector.agent"]
    first, second = acme.usage()
    assert (first.attempt, first.status, first.llm_calls) == (1, "failed", 1)
    assert first.error == "TimeoutError: the CRM timed out"
    assert first.credits_ucr == base + cost[0]
    assert (second.attempt, second.status, second.llm_calls) == (2, "ok", 2)
    assert second.credits_ucr == base + cost[1] + cost[2]
    assert acme.consumed_ucr() == 2 * base + sum(cost)


def test_re_running_the_same_attempt_bills_nothing_new(
    acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch)
    node = Transform("extract", mode="structured", schema=Person)
    consumed: list[int] = []

    @task
    def extract_replayed_then_again(text: str) -> list[Any]:
        results = [node.call(text)]
        consumed.append(acme.consumed_ucr())
        forget_call_numbers(node.name)  # the same attempt runs again from the top
        results.append(node.call(text))
        consumed.append(acme.consumed_ucr())
        results.append(node.call(text))  # a second call within the attempt is new work
        consumed.append(acme.consumed_ucr())
        return results

    @flow(name="replay")
    def replay(text: str) -> list[Any]:
        return extract_replayed_then_again(text)

    with spojit_tags():
        first, replayed, again = replay(TEXT)

    assert first == replayed == again
    assert len(spy.calls) == 3  # the replay did the work again...
    one_call = BASE_UCR["transform.structured"] + spy.calls[0].expected_ucr()
    assert consumed == [one_call, one_call, 2 * one_call]  # ...and was not billed again
    rows = acme.usage()
    assert [(r.key.rsplit(":", 1)[-1], r.credits_ucr, r.status) for r in rows] == [
        ("0", one_call, "ok"),  # the replay wrote no second record for call 0
        ("1", one_call, "ok"),
    ]
    assert rows[0].task_run_id == rows[1].task_run_id
    assert acme.by_node_type("replay") == {"transform.structured": (2 * one_call, 2)}


def test_a_replay_that_makes_a_failed_llm_call_after_all_pays_for_it(
    acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch, fail_first=1)
    node = Transform("extract", mode="structured", schema=Person)

    @task
    def fail_then_replay(text: str) -> Any:
        with pytest.raises(ConnectionError):
            node.call(text)
        forget_call_numbers(node.name)
        return node.call(text)

    @flow(name="replay-after-failure")
    def replay(text: str) -> Any:
        return fail_then_replay(text)

    with spojit_tags():
        replay(TEXT)

    (call,) = spy.calls  # one LLM call answered, on the replay
    assert acme.consumed_ucr() == BASE_UCR["transform.structured"] + call.expected_ucr()
