"""The guard end to end against the session's Prefect server: deployments with schedules and
scheduled runs; the workspace runs dry; its deployments' schedules are paused (scheduled runs
gone), a manual run is refused with a message a person can act on, webhooks queue; then a top-up
(or the period's renewal) resumes exactly what the guard paused and replays the queue once, in
order — and what a person paused stays paused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from freezegun import freeze_time
from guard_helpers import (
    actives,
    cron,
    deploy,
    flow_run,
    hooks_client,
    interval,
    paid_workflow,
    pause_by_hand,
    read,
    runs_tagged,
    schedule_runs,
    scheduled_runs,
    set_schedule,
    unique,
    wait_for_events,
)

from spojit_engine import Engine, InsufficientCredits
from spojit_engine.guards import prefect_api
from spojit_engine.guards.errors import OutOfCredits
from spojit_engine.guards.renewals import renew_due
from spojit_engine.guards.store import open_pauses
from spojit_engine.metering.store.usage import read_usage

# Prefect's client and its HTTP stack keep real time while the ledger's clock is frozen.
REAL_TIME = ["prefect", "httpx", "httpcore", "anyio", "pendulum", "whenever"]


class Scene:
    """A workspace with 0.50 credits left and three deployments of 1.00-credit workflows:
    ``digest`` (hourly, with a webhook), ``leads`` (two cron schedules, one switched off by a
    person beforehand) and ``archive`` (a deployment a person paused)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ws = engine.create_workspace(unique("acme"), plan="free")
        remaining = engine.balance(self.ws.id).remaining
        engine.debit(self.ws.id, remaining - Decimal("0.5"), key="drain")
        self.digest = paid_workflow(unique("digest"))
        self.leads = paid_workflow(unique("leads"))
        self.d_digest = deploy(engine, self.digest, "hourly", self.ws.id, [interval(3600)])
        self.d_leads = deploy(
            engine, self.leads, "mornings", self.ws.id, [cron("0 6 * * *"), cron("0 18 * * *")]
        )
        self.d_archive = deploy(engine, self.digest, "archive", self.ws.id, [interval(600)])
        set_schedule(self.d_leads, 1, active=False)
        pause_by_hand(self.d_archive)
        self.hook = unique("digest-hook")
        self.secret = engine.guard.hooks.create(
            self.hook,
            workflow=self.digest.name,
            workspace_id=self.ws.id,
            deployment_id=self.d_digest,
        )
        for deployment in (self.d_digest, self.d_leads):
            schedule_runs(deployment)
        schedule_runs(self.d_digest, since=datetime.now(UTC) - timedelta(hours=3))  # late ones
        self.late = [
            r.id for r in scheduled_runs(self.d_digest) if r.expected_start_time < datetime.now(UTC)
        ]
        assert self.late

    def post(self, client: Any, body: dict[str, Any]) -> Any:
        return client.post(
            f"/hooks/{self.hook}", json=body, headers={"Authorization": f"Bearer {self.secret}"}
        )


def run_dry(scene: Scene) -> None:
    """A manual run's first node is refused (0.50 < 1.00): that stops the workspace."""
    with pytest.raises(InsufficientCredits) as refused:
        scene.digest.run({"n": 0}, workspace=scene.ws.id)
    resets = f"{scene.engine.balance(scene.ws.id).resets_at:%Y-%m-%d}"
    assert str(refused.value) == (
        f"Out of credits: workspace {scene.ws.name} needs 1.00 credits but has 0.50 available; "
        f"top up or wait for the reset on {resets}."
    )


def pauses_reason(engine: Engine, scene: Scene) -> str:
    state = engine.guard.state(scene.ws.id)
    assert state is not None and state.reason is not None
    return state.reason


def assert_stopped(scene: Scene) -> None:
    engine = scene.engine
    assert actives(scene.d_digest) == [False]
    assert actives(scene.d_leads) == [False, False]
    archive = read(scene.d_archive)
    assert archive.paused and [s.active for s in archive.schedules] == [True]  # never touched
    assert scheduled_runs(scene.d_digest) == [] and scheduled_runs(scene.d_leads) == []
    for late in scene.late:  # past due, no worker took them: refused, not left to start later
        state = flow_run(str(late)).state
        assert (state.name, state.message) == ("OutOfCredits", pauses_reason(engine, scene))
    pauses = open_pauses(engine.sa_engine, scene.ws.id, limit=50)
    assert sorted((p.deployment_id, p.schedule_id) for p in pauses) == sorted(
        [
            (scene.d_digest, read(scene.d_digest).schedules[0].id),
            (scene.d_leads, read(scene.d_leads).schedules[0].id),
        ]
    )
    assert all(p.reason.startswith("Out of credits: workspace") for p in pauses)
    statuses = {d.name: d for d in engine.deployments(scene.ws.id)}
    assert statuses["hourly"].status == statuses["mornings"].status == "paused by the guard"
    assert statuses["archive"].status == "paused by a person"
    assert (
        statuses["hourly"].reason is not None
        and "has 0.50 credits, less than the 1.00" in statuses["hourly"].reason
    )

    # A manual run of a paused deployment would still start: admission refuses it.
    with pytest.raises(OutOfCredits) as refused:
        scene.digest.run({"n": 1}, workspace=scene.ws.id)
    resets = f"{engine.balance(scene.ws.id).resets_at:%Y-%m-%d}"
    message = (
        f"Out of credits: workspace {scene.ws.name} has 0.50 credits, less than the 1.00 its last "
        f"refused step needed; top up or wait for the reset on {resets}."
    )
    assert str(refused.value) == message
    [record] = [
        r
        for r in read_usage(engine.sa_engine, workspace_id=scene.ws.id)
        if r.node_name == "credit guard"
    ]
    assert (record.status, record.mode, record.credits_ucr) == ("refused", "manual", 0)
    state = flow_run(str(record.flow_run_id)).state
    assert (state.type.value, state.name, state.message) == ("CANCELLED", "OutOfCredits", message)


def assert_resumed(scene: Scene, queued_ids: list[int]) -> None:
    engine = scene.engine
    assert actives(scene.d_digest) == [True]
    assert actives(scene.d_leads) == [True, False]  # the one a person switched off stays off
    assert read(scene.d_archive).paused  # the deployment a person paused stays paused
    assert open_pauses(engine.sa_engine, scene.ws.id, limit=50) == []
    statuses = {d.name: d.status for d in engine.deployments(scene.ws.id)}
    assert statuses == {"hourly": "active", "mornings": "active", "archive": "paused by a person"}
    # The queue replayed once, in order, each request as its run's payload.
    replayed = runs_tagged(f"spojit:workspace={scene.ws.id}")
    webhook_runs = [r for r in replayed if "spojit:trigger=webhook" in r.tags]
    assert [r.parameters["payload"] for r in webhook_runs] == [{"order": 1}, {"order": 2}]
    assert all(
        f"spojit:hook-request={i}" in r.tags for r, i in zip(webhook_runs, queued_ids, strict=True)
    )
    engine.guard.reconcile()
    assert engine.guard.hooks.drain(scene.hook) == 0
    again = runs_tagged("spojit:trigger=webhook")
    assert len([r for r in again if f"spojit:workspace={scene.ws.id}" in r.tags]) == 2
    assert engine.guard.hooks.queued_count(scene.ws.id) == 0


def queue_two(scene: Scene) -> list[int]:
    with hooks_client(scene.engine) as client:
        first, second = scene.post(client, {"order": 1}), scene.post(client, {"order": 2})
    assert (first.status_code, second.status_code) == (202, 202)
    assert [first.json()["position"], second.json()["position"]] == [1, 2]
    assert first.json()["status"] == "queued"
    assert first.json()["reason"].startswith("Out of credits: workspace")
    return [first.json()["request_id"], second.json()["request_id"]]


def test_a_top_up_resumes_exactly_what_the_guard_paused(bound_on_each_db: Engine) -> None:
    scene = Scene(bound_on_each_db)
    assert len(scheduled_runs(scene.d_digest)) > 0 and len(scheduled_runs(scene.d_leads)) > 0
    run_dry(scene)
    assert_stopped(scene)
    queued = queue_two(scene)

    scene.engine.grant(scene.ws.id, Decimal("50"), kind="topup", key=unique("stripe:cs"))

    assert_resumed(scene, queued)
    seen = wait_for_events(scene.ws.id, [prefect_api.EVENT_EXHAUSTED, prefect_api.EVENT_RESUMED])
    exhausted = [s for s in seen if s.event == prefect_api.EVENT_EXHAUSTED]
    assert len(exhausted) == 1 and exhausted[0].payload["scope"] == "workspace"
    assert sorted(exhausted[0].payload["deployments"]) == sorted([scene.d_digest, scene.d_leads])
    assert [s.event for s in seen].count(prefect_api.EVENT_RESUMED) == 1


def test_the_period_renewal_resumes_it_too(bound: Engine) -> None:
    scene = Scene(bound)
    run_dry(scene)
    assert_stopped(scene)
    queued = queue_two(scene)
    resets_at = bound.balance(scene.ws.id).resets_at

    with freeze_time(resets_at + timedelta(minutes=1), tick=True, ignore=REAL_TIME):
        report = renew_due(bound.guard)
        assert scene.ws.id in report.touched
        assert bound.balance(scene.ws.id).allowance_remaining == Decimal("100")
        assert_resumed(scene, queued)


def test_a_workspace_that_is_not_stopped_runs_and_starts_webhooks_at_once(bound: Engine) -> None:
    ws = bound.create_workspace(unique("busy"), plan="free")
    workflow = paid_workflow(unique("ping"))
    deployment = deploy(bound, workflow, "ping", ws.id, [interval(3600)])
    secret = bound.guard.hooks.create(
        "ping-" + ws.id, workflow=workflow.name, workspace_id=ws.id, deployment_id=deployment
    )
    assert workflow.run({"x": 1}, workspace=ws.id) == {"fetched": {"x": 1}}
    with hooks_client(bound) as client:
        answer = client.post(
            f"/hooks/ping-{ws.id}", content=json.dumps([1, 2]), headers={"X-Spojit-Secret": secret}
        )
    assert answer.status_code == 202 and answer.json()["status"] == "started"
    run = flow_run(answer.json()["flow_run_id"])
    assert run.parameters == {"payload": [1, 2]} and "spojit:trigger=webhook" in run.tags
    assert bound.guard.state(ws.id) is None or not bound.guard.state(ws.id).stopped
