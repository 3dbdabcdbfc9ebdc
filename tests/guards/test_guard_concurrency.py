"""Across threads (and so across processes: the serialisation is in the database): a workspace is
stopped once and each schedule paused once; a queue drained by several callers at the same time
starts each request exactly once, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from guard_helpers import actives, deploy, interval, paid_workflow, runs_tagged, unique

from spojit_engine import Engine
from spojit_engine.guards.policy import Cause
from spojit_engine.guards.store import open_pauses


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_stops_at_once_pause_each_schedule_once(bound_on_each_db: Engine) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace(unique("race"), plan="free")
    workflow = paid_workflow(unique("race"))
    deployment = deploy(engine, workflow, "race", ws.id, [interval(60), interval(90)])

    def stop() -> bool:
        return engine.guard.exhaust(
            ws.id, scope="", cause=Cause.CREDITS, reason="Out of credits: test.", needed_ucr=1
        )

    assert sorted(together(stop, stop, stop)) == [False, False, True]
    assert actives(deployment) == [False, False]
    assert len(open_pauses(engine.sa_engine, ws.id, limit=10)) == 2


def test_concurrent_drains_start_each_queued_request_once_in_order(
    bound_on_each_db: Engine,
) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace(unique("burst"), plan="free")
    engine.debit(ws.id, engine.balance(ws.id).remaining, key="drain")
    workflow = paid_workflow(unique("burst"))
    deployment = deploy(engine, workflow, "burst", ws.id, [])
    name = f"burst-{ws.id}"
    hooks = engine.guard.hooks
    hooks.create(name, workflow=workflow.name, workspace_id=ws.id, deployment_id=deployment)
    ids = [hooks.receive(hooks.find(name), b'{"n": %d}' % n).request_id for n in range(6)]
    assert hooks.queued_count(ws.id) == 6

    def drain_a_while() -> int:
        started = 0
        for _ in range(30):
            started += hooks.drain(name)
            time.sleep(0.02)
        return started

    def top_up() -> int:
        engine.grant(ws.id, Decimal("20"), kind="topup", key=unique("topup"))
        return 0

    started = together(top_up, drain_a_while, drain_a_while)
    assert sum(started) <= 6 and hooks.queued_count(ws.id) == 0
    runs = [
        r for r in runs_tagged("spojit:trigger=webhook") if f"spojit:workspace={ws.id}" in r.tags
    ]
    request_of = {
        int(t.split("=")[1]) for r in runs for t in r.tags if t.startswith("spojit:hook-request=")
    }
    assert len(runs) == 6 and request_of == set(ids)
    in_start_order = [
        next(int(t.split("=")[1]) for t in r.tags if t.startswith("spojit:hook-request="))
        for r in runs
    ]
    assert in_start_order == ids
    assert [r.parameters["payload"]["n"] for r in runs] == list(range(6))
