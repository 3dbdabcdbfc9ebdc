"""Out of credits: a node whose base debit or LLM hold the workspace cannot cover stops the flow
run with a readable message, before any LLM call, and is never retried (DESIGN.md §3, §6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from node_billing import (
    BASE_UCR,
    UCR,
    Billed,
    Person,
    flow_run_state,
    spy_on_litellm,
    task_runs,
)

from spojit_engine.errors import InsufficientCredits
from spojit_engine.nodes import Connector, Response, Transform, Variable, Workflow


def test_too_few_credits_for_the_hold_stops_the_run_before_the_llm_call(
    acme_on_each_db: Billed, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = acme_on_each_db
    # The 0.5 base price fits; the hold for 512 output tokens (at least 0.01536) does not.
    acme.drain_to(Decimal("0.51"))
    spy = spy_on_litellm(monkeypatch)
    node = Transform("extract", mode="structured", schema=Person, retries=2)

    with pytest.raises(InsufficientCredits) as raised:
        acme.run(Workflow("broke", [node]), "Ana Novak is the CTO of Acme Robotics.")

    message = str(raised.value)
    assert message.startswith("Out of credits: workspace acme needs ")
    assert raised.value.available == Decimal("0.01")
    assert raised.value.needed > Decimal("0.01536")
    assert spy.attempts == 0  # no LLM call was made
    (row,) = acme.usage()  # one attempt: retrying cannot conjure credits
    assert (row.attempt, row.status, row.error, row.llm_calls) == (1, "refused", message, 0)
    # The node was admitted (its base price was debited) before its hold was refused.
    assert row.credits_ucr == BASE_UCR["transform.structured"]
    assert acme.engine.balance(acme.workspace_id).remaining == Decimal("0.01")
    assert row.flow_run_id is not None
    state = flow_run_state(row.flow_run_id)
    # Stopped for credits: a state of its own (kept as incomplete, to resume), not Failed.
    assert (state.type.value, state.name) == ("CANCELLED", "OutOfCredits")
    assert "Out of credits: workspace acme needs " in (state.message or "")
    (task_run,) = task_runs(row.flow_run_id)
    assert (task_run.run_count, task_run.state.is_failed()) == (1, True)


def test_too_few_credits_for_the_base_price_runs_nothing_of_the_node(acme: Billed) -> None:
    acme.drain_to(Decimal("0.99"))
    tool_calls: list[Any] = []

    def crm_lookup(value: Any) -> Any:
        tool_calls.append(value)
        return value

    workflow = Workflow("broke-direct", [
        Variable("source", "web"),  # 0.01: fits
        Connector("crm", crm_lookup, retries=3),  # 1.00: refused
        Response("reply"),  # never reached
    ])  # fmt: skip

    with pytest.raises(InsufficientCredits) as raised:
        acme.run(workflow, {"company": "Acme"})

    assert str(raised.value).startswith(
        "Out of credits: workspace acme needs 1.00 credits but has 0.98 available"
    )
    assert tool_calls == []
    assert [(r.node_name, r.attempt, r.status, r.credits_ucr) for r in acme.usage()] == [
        ("source", 1, "ok", BASE_UCR["variable"]),
        ("crm", 1, "refused", 0),
    ]
    assert acme.engine.balance(acme.workspace_id).remaining * UCR == 980_000
    assert acme.by_node_type("broke-direct") == {"variable": (BASE_UCR["variable"], 1)}
    flow_run_id = acme.last_flow_run_id()
    assert flow_run_state(flow_run_id).message.endswith(str(raised.value))
    crm_runs = [t for t in task_runs(flow_run_id) if t.name.startswith("crm")]
    assert [t.run_count for t in crm_runs] == [1]
