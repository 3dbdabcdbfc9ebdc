"""Resume without waiting: a grant made where Prefect cannot be reached (a shell without
``PREFECT_API_URL``) leaves the resume pending — ``spojit deployments`` says so, a webhook decides
from the live balance (it starts, it does not queue behind a stale reason) — and the background
reconciler of ``spojit serve`` finishes the resume on its next pass."""

from __future__ import annotations

import time
from decimal import Decimal

from guard_helpers import actives, hooks_client, unique
from test_guard_pause_resume import Scene, assert_stopped, run_dry

from spojit_engine import Engine
from spojit_engine.guards.deployments.reconciler import Reconciler
from spojit_engine.guards.deployments.status import RESUME_PENDING

WAIT_SECONDS = 60  # a bound on waiting for the background thread, not a timing assertion


def test_a_pending_resume_is_shown_and_finished_by_the_reconciler(bound: Engine) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    scene = Scene(bound)
    run_dry(scene)
    assert_stopped(scene)
    api = PREFECT_API_URL.value()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert not PREFECT_API_URL.value()
        with bound.watch_resumes() as watch:
            bound.grant(scene.ws.id, Decimal("20"), kind="promo", key=unique("g"), reason="test")
    assert watch.pending and watch.resumed == []
    assert PREFECT_API_URL.value() == api
    assert actives(scene.d_digest) == [False]  # nothing reached Prefect
    statuses = {d.name: d for d in bound.deployments(scene.ws.id)}
    assert statuses["hourly"].status == statuses["mornings"].status == RESUME_PENDING
    assert statuses["hourly"].reason is not None and "credits are back" in statuses["hourly"].reason
    assert statuses["archive"].status == "paused by a person"

    admin = bound.add_member(scene.ws.id, unique("ops") + "@acme.io", role="admin")
    with hooks_client(bound) as client:
        listed = client.get(
            "/api/v1/deployments", headers={"Authorization": f"Bearer {admin.token}"}
        ).json()
        assert {d["name"]: d["status"] for d in listed}["hourly"] == RESUME_PENDING
        answer = scene.post(client, {"order": 1})
    assert answer.status_code == 202 and answer.json()["status"] == "started", answer.json()

    reconciler = Reconciler(bound.guard, interval_seconds=0.2)
    reconciler.start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while actives(scene.d_digest) != [True] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        reconciler.stop()
    assert reconciler.passes >= 1
    assert actives(scene.d_digest) == [True] and actives(scene.d_leads) == [True, False]
    statuses = {d.name: d.status for d in bound.deployments(scene.ws.id)}
    assert statuses == {"hourly": "active", "mornings": "active", "archive": "paused by a person"}


def test_a_failing_pass_does_not_stop_the_loop(sqlite_engine: Engine) -> None:
    class Broken:
        calls = 0

        def reconcile(self) -> None:
            Broken.calls += 1
            raise OSError("database gone")

    reconciler = Reconciler(Broken(), interval_seconds=0.01)  # type: ignore[arg-type]
    assert reconciler.run_once() is None and reconciler.run_once() is None
    assert Broken.calls == 2
    assert Reconciler(sqlite_engine.guard, interval_seconds=1).run_once() is not None
