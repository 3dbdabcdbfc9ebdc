"""Per-workflow budget caps, enforced inside the ledger's transaction: a run that would cross its
cap stops at the step that would cross it, with a clear message, and only that workflow's
schedules pause; the workspace and its other workflows run on."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time
from guard_helpers import actives, deploy, fetch, interval, paid_workflow, unique
from pydantic import BaseModel

from spojit_engine import Connector, Engine, Parallel, Transform, Workflow
from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput
from spojit_engine.guards.budgets import spent_in_run_ucr
from spojit_engine.guards.errors import BudgetExceeded
from spojit_engine.guards.renewals import renew_due
from spojit_engine.metering.store.usage import UsageRow, read_usage
from spojit_engine.money import ucr_to_credits

REAL_TIME = ["prefect", "httpx", "httpcore", "anyio", "pendulum", "whenever"]
RECORDS_WAIT_SECONDS = 60


def run_credits(engine: Engine, flow_run_id: str) -> Decimal:
    rows = read_usage(engine.sa_engine, flow_run_id=flow_run_id)
    return ucr_to_credits(sum(r.credits_ucr for r in rows))


def all_records(engine: Engine, ws_id: str, *, count: int) -> list[UsageRow]:
    """The workspace's usage records once there are ``count``: the flow raises at the first
    refused branch while a sibling may still be finishing (bounded wait)."""
    deadline = time.monotonic() + RECORDS_WAIT_SECONDS
    while True:
        records = [r for r in read_usage(engine.sa_engine, workspace_id=ws_id) if r.flow_run_id]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_a_parallel_run_stops_exactly_at_its_per_run_cap(bound_on_each_db: Engine) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace(unique("fan"), plan="free")
    fan = Workflow(unique("fan"), [Parallel("fan", [Connector(f"c{i}", fetch) for i in range(4)])])
    other = paid_workflow(unique("other"))
    d_fan = deploy(engine, fan, "fan", ws.id, [interval(3600)])
    d_other = deploy(engine, other, "other", ws.id, [interval(3600)])
    budget = engine.set_workflow_budget(ws.id, fan.name, max_credits_per_run="2.5")
    assert budget is not None and budget.max_credits_per_run == Decimal("2.5")

    with pytest.raises(BudgetExceeded) as stopped:
        fan.run({"x": 1}, workspace=ws.id)
    assert str(stopped.value) == (
        f"Budget cap: workflow {fan.name} may spend 2.50 credits per run; this run has spent "
        "2.01 and its next step needs 1.00. Raise max_credits_per_run to let such runs finish; "
        "its schedules resume the next day (UTC)."
    )
    # Four branches raced: exactly two fit under the cap, whichever they were. Prefect cancels
    # a branch that had not started when the flow failed, so one or two were refused.
    records = all_records(engine, ws.id, count=4)
    run_id = records[0].flow_run_id
    assert run_id is not None
    with read_transaction(engine.sa_engine) as conn:
        assert spent_in_run_ucr(conn, run_id) == 2_010_000
    assert engine.balance(ws.id).consumed == Decimal("2.01")
    statuses = [r.status for r in records]
    assert statuses.count("ok") == 3 and 1 <= statuses.count("refused") <= 2
    assert run_credits(engine, run_id) == Decimal("2.01")

    assert actives(d_fan) == [False] and actives(d_other) == [True]
    assert engine.guard.state(ws.id) is None or not engine.guard.state(ws.id).stopped
    state = engine.guard.state(ws.id, fan.name)
    assert state is not None and state.stopped and state.cause.value == "budget_run"
    assert other.run(None, workspace=ws.id) == {"fetched": None}  # the workspace runs on

    engine.set_workflow_budget(ws.id, fan.name, max_credits_per_run="10")  # raised: resumes
    assert actives(d_fan) == [True]
    assert len(fan.run({"x": 2}, workspace=ws.id)) == 4


def test_a_day_cap_stops_the_workflow_until_the_next_utc_day(bound_on_each_db: Engine) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace(unique("daily"), plan="free")
    daily, other = paid_workflow(unique("daily")), paid_workflow(unique("other"))
    d_daily = deploy(engine, daily, "daily", ws.id, [interval(3600)])
    d_other = deploy(engine, other, "other", ws.id, [interval(3600)])
    engine.set_workflow_budget(ws.id, daily.name, max_credits_per_day="2.5")
    daily.run(1, workspace=ws.id)
    daily.run(2, workspace=ws.id)

    with pytest.raises(BudgetExceeded) as stopped:  # 2.00 + 1.00 > 2.50: its step is refused
        daily.run(3, workspace=ws.id)
    message = str(stopped.value)
    assert message.startswith(
        f"Budget cap: workflow {daily.name} has spent 2.00 of its 2.50 credits for "
    )
    assert "and its next step needs 1.00; it resumes on " in message
    assert actives(d_daily) == [False] and actives(d_other) == [True]
    with pytest.raises(BudgetExceeded) as at_start:  # now refused before any step
        daily.run(4, workspace=ws.id)
    assert str(at_start.value) == message
    assert engine.balance(ws.id).consumed == Decimal("2")

    tomorrow = engine.guard.state(ws.id, daily.name)
    assert tomorrow is not None and tomorrow.until is not None
    with freeze_time(tomorrow.until + timedelta(minutes=1), tick=True, ignore=REAL_TIME):
        report = renew_due(engine.guard)
        assert f"{ws.id}/{daily.name}" in report.resumed
        assert actives(d_daily) == [True]


def test_a_run_cap_counts_what_llm_steps_actually_cost(bound: Engine) -> None:
    """Holds count in full while open, then at their settled cost: the run's spend as the cap
    sees it equals the sum of its node calls."""

    class Ticket(BaseModel):
        subject: str
        urgent: bool

    engine = bound
    ws = engine.create_workspace(unique("llm"), plan="free")
    triage = Workflow(
        unique("triage"),
        [Transform("read", mode="structured", schema=Ticket), Connector("file", fetch)],
    )
    engine.set_workflow_budget(ws.id, triage.name, max_credits_per_run="50")
    triage.run({"text": "The export is broken"}, workspace=ws.id)
    [run_id] = {r.flow_run_id for r in read_usage(engine.sa_engine, workspace_id=ws.id)}
    assert run_id is not None
    with read_transaction(engine.sa_engine) as conn:
        spent = spent_in_run_ucr(conn, run_id)
    assert ucr_to_credits(spent) == run_credits(engine, run_id) > Decimal("1.5")


def test_caps_must_be_positive_and_apply_to_one_workflow(sqlite_engine: Engine) -> None:
    ws = sqlite_engine.create_workspace("acme", plan="free")
    with pytest.raises(InvalidInput):
        sqlite_engine.set_workflow_budget(ws.id, "leads", max_credits_per_day="0")
    assert sqlite_engine.set_workflow_budget(ws.id, "leads") is None  # no caps: removed
    sqlite_engine.set_workflow_budget(ws.id, "leads", max_credits_per_day="1")
    # A debit outside any flow run is held to the day cap too (the ledger enforces it).
    sqlite_engine.debit(ws.id, "0.6", key="a", workflow="leads")
    with pytest.raises(BudgetExceeded):
        sqlite_engine.debit(ws.id, "0.6", key="b", workflow="leads")
    sqlite_engine.debit(ws.id, "0.6", key="c", workflow="other")
    assert sqlite_engine.debit(ws.id, "0.6", key="a", workflow="leads").replayed
