"""Test runs are billed like live runs and labelled test everywhere; a Loop's ``test_sample``
scopes a test run down. Each flow run publishes a ``spojit-credits`` table artifact."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from node_billing import (
    BASE_UCR,
    UCR,
    Billed,
    Person,
    credit_artifact,
    credit_artifacts,
    spojit_tags,
    spy_on_litellm,
)
from prefect import flow

from spojit_engine.errors import InsufficientCredits
from spojit_engine.nodes import Connector, Loop, Transform, Trigger, Variable, Workflow
from spojit_engine.nodes.workflow import publish_credit_artifact


def test_a_test_run_is_billed_like_a_live_run_and_labelled_test(
    acme: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on_litellm(monkeypatch)
    workflow = Workflow(
        "designer", [Trigger(), Transform("extract", mode="structured", schema=Person)]
    )
    text = "Ana Novak is the CTO of Acme Robotics."

    acme.run(workflow, text, test=True)
    after_test_run = acme.consumed_ucr()
    acme.run(workflow, text)

    test_call, live_call = spy.calls
    assert test_call.expected_ucr() == live_call.expected_ucr()
    expected = {
        "trigger": (BASE_UCR["trigger"], 1),
        "transform.structured": (BASE_UCR["transform.structured"] + test_call.expected_ucr(), 1),
    }
    assert after_test_run == sum(credits for credits, _ in expected.values())
    assert acme.consumed_ucr() == 2 * after_test_run  # a test run costs what a live run costs
    assert acme.by_node_type("designer", test_run=True) == expected
    assert acme.by_node_type("designer", test_run=False) == expected
    assert [(r.node_name, r.test_run) for r in acme.usage()] == [
        ("trigger", True), ("extract", True), ("trigger", False), ("extract", False),
    ]  # fmt: skip


def test_a_loop_runs_only_its_test_sample_in_a_test_run(acme: Billed) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def times_ten(item: int) -> int:
        with lock:
            seen.append(item)
        return item * 10

    workflow = Workflow("sampled", [Loop("each", Transform("times-ten", times_ten), test_sample=2)])
    items = [1, 2, 3, 4, 5]

    assert acme.run(workflow, items, test=True) == [10, 20]
    assert sorted(seen) == [1, 2]
    assert acme.by_node_type("sampled", test_run=True) == {
        "loop": (BASE_UCR["loop"], 1),
        "transform.map": (2 * BASE_UCR["transform.map"], 2),
    }

    seen.clear()
    assert acme.run(workflow, items) == [10, 20, 30, 40, 50]
    assert sorted(seen) == items
    assert acme.by_node_type("sampled", test_run=False) == {
        "loop": (BASE_UCR["loop"], 1),
        "transform.map": (5 * BASE_UCR["transform.map"], 5),
    }


def test_the_credit_artifact_has_a_row_per_node_call(acme: Billed) -> None:
    workflow = Workflow("two-steps", [Trigger("start"), Variable("stage", "new")])

    acme.run(workflow, {"id": 7})

    artifact = credit_artifact(acme.last_flow_run_id())
    columns = ("node", "type", "attempt", "status", "tokens_in", "credits")
    assert [tuple(row[c] for c in columns) for row in artifact.rows] == [
        ("start", "trigger", 1, "ok", 0, "0.01"),
        ("stage", "variable", 1, "ok", 0, "0.01"),
    ]
    assert artifact.total == Decimal("0.02") == acme.engine.balance(acme.workspace_id).consumed


def test_a_failed_run_still_publishes_what_it_consumed(acme: Billed) -> None:
    acme.drain_to(Decimal("0.5"))
    workflow = Workflow("fails", [Variable("stage", "new"), Connector("crm", lambda v: v)])

    with pytest.raises(InsufficientCredits):
        acme.run(workflow, {"id": 7})

    artifacts = credit_artifacts(acme.last_flow_run_id())
    assert [[row["node"] for row in a.rows] for a in artifacts] == [["stage", "crm"]]


def test_the_credit_artifact_of_a_run_with_many_node_calls_is_complete(acme: Billed) -> None:
    node = Variable("item", True)

    @flow(name="many-calls")
    def many_calls() -> list[dict[str, Any]]:
        for i in range(501):
            node.call(i)  # each a node call of this flow run, no task runs: fast
        return publish_credit_artifact()

    with spojit_tags():
        rows = many_calls()

    assert acme.consumed_ucr() == 501 * BASE_UCR["variable"]
    assert len(rows) == 501
    total = sum(Decimal(row["credits"]) for row in rows) * UCR
    assert total == acme.consumed_ucr()
