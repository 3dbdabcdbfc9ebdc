"""Admission at flow start tells trigger kinds apart (Prefect's run context and our tags) and
refuses each kind of run of a stopped workspace; a refused webhook run goes back to its queue;
the guard never resumes a schedule a person touched, nor one another stop still holds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from guard_helpers import (
    actives,
    deploy,
    flow_run,
    interval,
    paid_workflow,
    prefect,
    read,
    schedule_runs,
    scheduled_runs,
    set_schedule,
    unique,
)

from spojit_engine import Engine, InsufficientCredits, Workflow
from spojit_engine.guards.errors import OutOfCredits
from spojit_engine.guards.schema import webhook_queue
from spojit_engine.guards.store import binding_of
from spojit_engine.metering.meter.run_context import WORKSPACE_TAG
from spojit_engine.metering.store.usage import read_usage


def run_in_process(workflow: Workflow, run: Any) -> Any:
    """Execute an existing flow run here, as a worker would (its context is that run's), made
    due now first so Prefect does not wait for its scheduled time."""
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    with prefect() as client:
        client.set_flow_run_state(run.id, Scheduled(), force=True)
        run = client.read_flow_run(run.id)
    return run_flow(workflow.flow, flow_run=run, parameters=run.parameters, return_type="state")


def stopped_workspace(engine: Engine) -> tuple[Any, Workflow]:
    """A workspace with 0.50 credits whose first refused step (1.00) stopped it."""
    ws = engine.create_workspace(unique("dry"), plan="free")
    engine.debit(ws.id, engine.balance(ws.id).remaining - Decimal("0.5"), key="drain")
    workflow = paid_workflow(unique("job"))
    with pytest.raises(InsufficientCredits):
        workflow.run(None, workspace=ws.id)
    state = engine.guard.state(ws.id)
    assert state is not None and state.stopped
    return ws, workflow


def guard_records(engine: Engine, ws_id: str) -> list[Any]:
    rows = read_usage(engine.sa_engine, workspace_id=ws_id)
    return [r for r in rows if r.node_name == "credit guard"]


def test_a_scheduled_run_of_a_deployment_made_elsewhere_is_bound_paused_and_refused(
    bound: Engine,
) -> None:
    ws, workflow = stopped_workspace(bound)
    with prefect() as client:  # made with Prefect's own API, not `spojit deploy`: unbound
        deployment_id = str(
            client.create_deployment(
                flow_id=client.create_flow_from_name(workflow.name),
                name="elsewhere",
                entrypoint="x.py:workflow.flow",
                schedules=[interval(60)],
                tags=[WORKSPACE_TAG + ws.id],
            )
        )
    schedule_runs(deployment_id)
    [first, *_] = scheduled_runs(deployment_id)
    assert first.auto_scheduled and first.created_by.type == "SCHEDULE"

    state = run_in_process(workflow, first)

    assert (state.type.value, state.name) == ("CANCELLED", "OutOfCredits")
    assert state.message.startswith(f"Out of credits: workspace {ws.name} has 0.50 credits")
    binding = binding_of(bound.sa_engine, deployment_id)
    assert binding is not None and (binding.workspace_id, binding.workflow) == (
        ws.id,
        workflow.name,
    )
    assert actives(deployment_id) == [False] and scheduled_runs(deployment_id) == []
    [record] = guard_records(bound, ws.id)
    assert (record.mode, record.status, record.flow_run_id) == (
        "schedule",
        "refused",
        str(first.id),
    )


def test_test_runs_are_refused_alike_and_labelled_test(bound: Engine) -> None:
    ws, workflow = stopped_workspace(bound)
    with pytest.raises(OutOfCredits):
        workflow.run(None, workspace=ws.id, test=True)
    [record] = guard_records(bound, ws.id)
    assert (record.mode, record.test_run) == ("test", True)


def test_a_refused_webhook_run_goes_back_to_its_queue_and_replays_once(bound: Engine) -> None:
    ws = bound.create_workspace(unique("hooked"), plan="free")
    bound.debit(ws.id, bound.balance(ws.id).remaining - Decimal("0.5"), key="drain")
    workflow = paid_workflow(unique("hooked"))
    deployment_id = deploy(bound, workflow, "hooked", ws.id, [])
    hooks = bound.guard.hooks
    hooks.create(
        f"h-{ws.id}", workflow=workflow.name, workspace_id=ws.id, deployment_id=deployment_id
    )
    receipt = hooks.receive(hooks.find(f"h-{ws.id}"), b'{"lead": 7}')  # 0.50 left: it starts
    assert receipt.status == "started" and receipt.flow_run_id is not None
    with pytest.raises(InsufficientCredits):  # meanwhile another run finds the workspace dry
        workflow.run(None, workspace=ws.id)

    state = run_in_process(workflow, flow_run(receipt.flow_run_id))  # the webhook run starts

    assert state.name == "OutOfCredits"
    [record] = guard_records(bound, ws.id)
    assert record.mode == "webhook"
    assert hooks.queued_count(ws.id) == 1  # back in the queue, under its own id
    bound.grant(ws.id, Decimal("10"), kind="topup", key=unique("topup"))
    assert hooks.queued_count(ws.id) == 0
    from sqlalchemy import select

    from spojit_engine.db import read_transaction

    with read_transaction(bound.sa_engine) as conn:
        row = conn.execute(
            select(webhook_queue).where(webhook_queue.c.id == receipt.request_id)
        ).one()
    assert (row.state, row.attempts) == ("started", 2) and row.flow_run_id != receipt.flow_run_id
    replayed = flow_run(row.flow_run_id)
    assert replayed.parameters == {"payload": {"lead": 7}}
    assert replayed.idempotency_key == f"spojit-hook:{row.run_key}:2"  # its own key, 2nd try
    assert len(row.run_key) == 32


def test_a_schedule_a_person_touched_while_paused_stays_paused(bound: Engine) -> None:
    ws, workflow = stopped_workspace(bound)
    two = deploy(bound, workflow, "two", ws.id, [interval(60), interval(120)])  # bound: paused
    assert actives(two) == [False, False]
    set_schedule(two, 1, active=False)  # a person switches the second one off (again)

    bound.grant(ws.id, Decimal("10"), kind="topup", key=unique("topup"))

    assert actives(two) == [True, False]
    assert [d.status for d in bound.deployments(ws.id) if d.name == "two"] == ["active"]


def test_a_schedule_two_stops_hold_resumes_only_when_both_are_gone(bound: Engine) -> None:
    ws = bound.create_workspace(unique("layers"), plan="free")
    workflow = paid_workflow(unique("capped"))
    capped = deploy(bound, workflow, "capped", ws.id, [interval(60)])
    bound.set_workflow_budget(ws.id, workflow.name, max_credits_per_day="1")
    workflow.run(None, workspace=ws.id)
    with pytest.raises(InsufficientCredits):  # the day cap: the workflow stops
        workflow.run(None, workspace=ws.id)
    assert actives(capped) == [False]
    bound.debit(ws.id, bound.balance(ws.id).remaining, key="drain")
    other = paid_workflow(unique("other"))
    with pytest.raises(InsufficientCredits):  # then the workspace runs dry too
        other.run(None, workspace=ws.id)

    bound.grant(ws.id, Decimal("10"), kind="topup", key=unique("topup"))
    assert actives(capped) == [False]  # the day cap still holds it
    bound.set_workflow_budget(ws.id, workflow.name, max_credits_per_day="5")
    assert actives(capped) == [True]
    info = read(capped)
    with prefect() as client:
        assert client.read_deployment(UUID(info.id)).paused is False
