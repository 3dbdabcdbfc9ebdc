"""Reserved runs (issue 9, item 4): a run that opted in holds its estimate at start; its nodes
draw from it; the rest is released at the end. A run whose reservation cannot be covered does
not start, and concurrent reserved runs never overspend."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from guard_helpers import fetch, unique
from pydantic import BaseModel

from spojit_engine import Connector, Engine, Transform, Workflow
from spojit_engine.display import credits_text
from spojit_engine.errors import InvalidInput
from spojit_engine.guards.policy import REFUSED_STATE_NAME
from spojit_engine.guards.runs.reserve import policy_of
from spojit_engine.metering.meter.run_context import RESERVE_TAG
from spojit_engine.metering.store.usage import read_usage

RUNS, COVERED = 8, 5


def reserved(name: str, policy: str = "max") -> Workflow:
    """Two Direct Connectors: 2.00 credits a run, estimated exactly (no LLM)."""
    return Workflow(
        name,
        [Connector("first", fetch, mode="direct"), Connector("second", fetch, mode="direct")],
        reserve=policy,
    )


def test_of_8_concurrent_reserved_runs_against_credits_for_5_exactly_5_start(
    bound_on_each_db: Engine,
) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace("acme", plan="free")
    workflow = reserved(unique("reserved"))
    per_run = engine.estimate(ws.id, workflow).total.credits.max
    assert per_run == Decimal(2)
    # Credits for five runs and most of a sixth.
    engine.debit(ws.id, engine.balance(ws.id).remaining - COVERED * per_run - Decimal("1.9"),
                 key="leave-five-runs")  # fmt: skip
    outcomes: list[Any] = []
    lock = threading.Lock()
    go = threading.Barrier(RUNS)

    def one_run() -> None:
        go.wait()
        state = workflow.flow({"lead": 1}, return_state=True)
        with lock:
            outcomes.append(state)

    threads = [threading.Thread(target=one_run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    names = sorted(s.name for s in outcomes)
    assert names == ["Completed"] * COVERED + [REFUSED_STATE_NAME] * (RUNS - COVERED)
    # The first refused reservation stops the workspace until its balance covers one; runs
    # arriving after that are refused by admission, with the same numbers.
    messages = sorted(s.message for s in outcomes if s.name == REFUSED_STATE_NAME)
    assert any(
        m.startswith("Not started: this run reserves its max estimate of 2.00") for m in messages
    )
    assert all("1.90" in m and "\n" not in m for m in messages)
    balance = engine.balance(ws.id)
    assert balance.remaining == Decimal("1.9") and balance.held == 0 and balance.overdraft == 0
    assert engine.incomplete_runs(ws.id) == []  # no run was stopped part-way
    refused = [str(s.state_details.flow_run_id) for s in outcomes if s.name == REFUSED_STATE_NAME]
    for run_id in refused:
        assert [r.node_name for r in read_usage(engine.sa_engine, flow_run_id=run_id)] == [
            "credit guard"
        ]
    assert engine.verify(ws.id) == 1


def test_a_reserved_run_releases_what_it_did_not_use_even_when_it_fails(bound: Engine) -> None:
    engine = bound
    ws = engine.create_workspace("acme", plan="free")
    before = engine.balance(ws.id).remaining

    def boom(value: Any) -> Any:
        raise RuntimeError("the CRM is down")

    workflow = Workflow(
        unique("fails"),
        [Connector("first", fetch, mode="direct"), Connector("crm", boom, mode="direct"),
         Connector("never", fetch, mode="direct")],
        reserve="p95",
    )  # fmt: skip
    state = workflow.flow(None, return_state=True)

    assert state.is_failed()
    balance = engine.balance(ws.id)
    assert balance.held == 0  # the reservation was closed in the run's finally
    assert before - balance.remaining == Decimal(2)  # first and crm's base; never: nothing
    assert engine.verify(ws.id) == 1


def test_a_per_run_cap_admits_a_reservation_it_covers_and_names_itself_when_it_does_not(
    bound_on_each_db: Engine,
) -> None:
    class Ticket(BaseModel):
        subject: str
        urgent: bool

    engine = bound_on_each_db
    ws = engine.create_workspace("acme", plan="free")
    steps = [Transform("read", mode="structured", schema=Ticket), Connector("file", fetch)]
    workflow = Workflow(unique("capped"), steps, reserve="max")
    estimate = workflow.reservation(
        ws.id, "max", inputs={"text": "The export is broken"}, test=False, sample=None
    )
    engine.set_workflow_budget(ws.id, workflow.name, max_credits_per_run=str(estimate))

    # The LLM call's hold is carved from the reservation: counted once, the run fits its cap.
    state = workflow.flow({"text": "The export is broken"}, return_state=True)
    assert state.is_completed(), state.message
    assert engine.balance(ws.id).held == 0 and engine.verify(ws.id) == 1

    engine.set_workflow_budget(ws.id, workflow.name, max_credits_per_run="1")
    again = workflow.reservation(ws.id, "max", inputs={"text": "again"}, test=False, sample=None)
    refused = workflow.flow({"text": "again"}, return_state=True)
    assert (refused.type.value, refused.name) == ("CANCELLED", REFUSED_STATE_NAME)
    assert refused.message == (
        f"Not started: this run reserves its max estimate of {credits_text(again)} credits at "
        f"start and workflow {workflow.name}'s cap per run (max_credits_per_run) allows 1.00 more; "
        "raise the cap, or reserve less."
    )
    stopped = engine.guard.state(ws.id, workflow.name)
    assert stopped is not None and stopped.cause.value == "budget_run"
    assert engine.guard.state(ws.id) is None or not engine.guard.state(ws.id).stopped


def test_a_per_run_cap_counts_what_group_commit_charged_to_the_reservation(
    bound_on_each_db: Engine,
) -> None:
    """Group commit posts a reserved run's base charges without the spend limit; the cap still
    counts them (through what they drew from the reservation), each credit once."""
    from prefect import flow
    from prefect.context import FlowRunContext

    from spojit_engine.guards.errors import BudgetExceeded
    from spojit_engine.metering.meter.batch import commit_run

    engine = bound_on_each_db
    ws = engine.create_workspace("acme", plan="free")
    name = unique("batched-capped")
    engine.set_workflow_budget(ws.id, name, max_credits_per_run="3")
    nodes = [Connector(f"step-{i}", fetch, mode="direct") for i in range(4)]  # 1.00 each

    @flow(name=name, persist_result=False)
    def run() -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        run_id = str(context.flow_run.id)
        engine.reserve_run(ws.id, "3", flow_run_id=run_id, workflow=name)  # the cap allows it
        for node in nodes[:3]:
            node(1)  # admitted against the reservation, batched
        commit_run(run_id, forget=False)  # posted without the limit
        try:
            nodes[3](1)  # the reservation is spent: a direct debit the limit sees
        except BudgetExceeded as refused:
            return refused.cause
        finally:
            engine.close_run_reservation(run_id)
        return "admitted"

    assert run() == "budget_run"
    assert engine.balance(ws.id).consumed == Decimal(3)  # the cap, not a credit more
    assert engine.verify(ws.id) == 1


def test_the_reservation_policy_comes_from_the_run_then_the_workflow() -> None:
    assert policy_of([RESERVE_TAG + "p95"], "max") == "p95"
    assert policy_of(["spojit:test"], "max") == "max"
    assert policy_of([], None) is None
    with pytest.raises(InvalidInput, match="p95 or max"):
        policy_of([RESERVE_TAG + "all"], None)
    with pytest.raises(InvalidInput, match="reserve must be"):
        Workflow("w", [Connector("c", fetch)], reserve="most")


def test_a_sampled_test_run_reserves_only_its_sample(bound: Engine) -> None:
    from spojit_engine import Loop

    engine = bound
    ws = engine.create_workspace("acme", plan="free")
    engine.debit(ws.id, engine.balance(ws.id).remaining - Decimal(5), key="leave-5")
    workflow = Workflow(
        unique("sampled"), [Loop("each", Connector("item", fetch, mode="direct"))], reserve="max"
    )
    items = list(range(10))

    live = workflow.flow(items, return_state=True)  # ten items: 10.01 does not fit in 5
    assert (live.name, engine.balance(ws.id).remaining) == (REFUSED_STATE_NAME, Decimal(5))
    assert engine.guard.stopped_reason(ws.id, workflow.name) is not None  # until 10.01 fits
    assert engine.guard.stopped_reason(ws.id, "another") is None  # the workspace goes on
    sampled = workflow.flow(items, test=True, sample=2, return_state=True)

    assert sampled.name == "Completed"
    assert engine.balance(ws.id).remaining == Decimal(5) - Decimal("2.01")
    assert engine.balance(ws.id).held == 0
    engine.grant(ws.id, Decimal(10), kind="topup", key="stripe:cs_covers")
    assert engine.guard.stopped_reason(ws.id, workflow.name) is None  # it fits again
