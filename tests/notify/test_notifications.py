"""Credit notifications end to end: a real ledger (SQLite and PostgreSQL), a local HTTP receiver,
a real Prefect webhook block, real processes racing; the sender's pass is run with ``flush``."""

from __future__ import annotations

import multiprocessing as mp
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from settable_clock import SettableClock

from spojit_engine import Engine
from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.metering.store.usage import UsageRow, record_usage

START = datetime(2026, 11, 1, tzinfo=UTC)
D = Decimal

CLOCK_START = START + timedelta(hours=1)  # where the ``clocked`` engine's clock starts


def test_each_threshold_fires_once_per_period(
    clocked: tuple[Engine, SettableClock], receiver: Any
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="free", period_start=START)  # 100 credits
    engine.add_notification(ws.id, webhook=receiver.url)

    def spend(amount: str, key: str) -> list[str]:
        engine.debit(ws.id, D(amount), key=key, workflow="leads")
        engine.notifier.flush()
        return receiver.events()

    assert spend("74.999999", "d1") == []
    assert spend("0.000001", "d2") == ["usage_75"]
    assert spend("1", "d3") == ["usage_75"]  # not again
    assert spend("20", "d4") == ["usage_75", "usage_90"]
    assert spend("4", "d5") == ["usage_75", "usage_90", "usage_100", "out_of_credits"]
    first = receiver.bodies[0]
    assert (first["workspace"], first["consumed"], first["remaining"]) == (
        "acme", "75.000000", "25.000000",
    )  # fmt: skip
    assert "75% of this period's credits" in first["text"]

    engine.grant(ws.id, D("50"), kind="topup", key="stripe:cs_1")
    engine.notifier.flush()
    assert receiver.events()[-1] == "resumed"
    engine.grant(ws.id, D("50"), kind="topup", key="stripe:cs_2")
    engine.notifier.flush()
    assert receiver.events().count("resumed") == 1

    clock.now = START + timedelta(days=31)  # the next period: each threshold may fire again
    engine.debit(ws.id, D("150"), key="d6", workflow="leads")  # of 100 allowance + 100 top-up
    engine.notifier.flush()
    assert receiver.events()[-1] == "usage_75" and receiver.events().count("usage_75") == 2
    assert {s.state for s in engine.notifications_sent(ws.id)} == {"sent"}


def _run(engine: Engine, ws: str, run_id: str, ucr: int, *, test_run: bool = False) -> None:
    """One finished run of ``leads`` (one node call), and the poke the meter gives after it."""
    record_usage(
        engine.sa_engine,
        UsageRow(
            key=f"node:{run_id}", workspace_id=ws, workflow="leads", flow_run_id=run_id,
            task_run_id=None, attempt=1, node_name="enrich", node_type="connector",
            mode="agent", models="gpt-4o", tokens_in=10, tokens_out=5, tokens_cached=0,
            llm_calls=1, credits_ucr=ucr, member_id=None, test_run=test_run, status="ok",
            error=None, created_at=engine.ledger.clock(),
        ),
    )  # fmt: skip
    engine.notifier.poke(ws)
    engine.notifier.flush()


def test_a_regression_fires_when_cost_per_run_jumps_and_not_before(
    clocked: tuple[Engine, SettableClock], receiver: Any
) -> None:
    engine, _ = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START).id
    engine.debit(ws, "0.000001", key="leads-known", workflow="leads")  # a rule names a known one
    engine.add_notification(ws, kind="regression", workflow="leads", factor="2", runs=3,
                            webhook=receiver.url)  # fmt: skip
    engine.add_notification(ws, kind="run_above", workflow="leads", above="5",
                            webhook=receiver.url)  # fmt: skip
    for i, ucr in enumerate([1_000_000, 1_200_000, 3_000_000]):  # no baseline of 3 runs yet
        _run(engine, ws, f"run-{i}", ucr)
    _run(engine, ws, "run-3", 2_400_000)  # 2 x the median (1.2) exactly: not above
    _run(engine, ws, "run-4", 9_000_000, test_run=True)  # a test run is not a live run
    assert receiver.events() == []
    _run(engine, ws, "run-5", 4_900_000)  # > 2 x median(1.2, 3, 2.4) = 4.8
    assert receiver.events() == ["run_regression"]
    assert receiver.bodies[0]["flow_run_id"] == "run-5"
    _run(engine, ws, "run-6", 5_000_001)  # above the 5-credit limit (and 2 x 3 = 6? no)
    assert receiver.events() == ["run_regression", "run_above_limit"]
    engine.notifier.poke(ws)
    engine.notifier.flush()
    assert len(receiver.events()) == 2  # each alert once


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-listens"


def test_a_dead_receiver_leaves_the_alert_pending_and_the_spend_stands(
    clocked: tuple[Engine, SettableClock],
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="free", period_start=START).id
    engine.add_notification(ws, webhook=_dead_url())
    entry = engine.debit(ws, D("80"), key="d1", workflow="leads")
    engine.notifier.flush()
    (alert,) = engine.notifications_sent(ws)
    assert (alert.event, alert.state, alert.attempts) == ("usage_75", "pending", 1)
    assert alert.last_error and "failed" in alert.last_error
    assert entry.amount == D("-80") and engine.balance(ws).consumed == D("80")
    for _ in range(engine.settings.notify_attempts_max):  # each retry after its backoff
        clock.now += timedelta(hours=1)
        engine.notifier.deliver_due()
    (alert,) = engine.notifications_sent(ws)
    assert (alert.state, alert.attempts) == ("failed", engine.settings.notify_attempts_max)
    engine.verify(ws)


def _racer(url: str, ws: str, index: int, barrier: Any) -> None:
    engine = Engine(url)
    barrier.wait()
    engine.debit(ws, D("40"), key=f"race-{index}", workflow="leads")
    engine.notifier.flush()
    engine.close()


def test_two_processes_crossing_a_threshold_at_once_send_one_alert(
    database_url: str, receiver: Any
) -> None:
    engine = Engine(database_url)
    ws = engine.create_workspace("acme", plan="free").id  # 100 credits: 80 used crosses 75 %
    engine.add_notification(ws, webhook=receiver.url)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    racers = [ctx.Process(target=_racer, args=(database_url, ws, i, barrier)) for i in range(2)]
    for p in racers:
        p.start()
    for p in racers:
        p.join(timeout=120)
    assert [p.exitcode for p in racers] == [0, 0]
    engine.notifier.poke(ws)
    engine.notifier.flush()
    assert receiver.events() == ["usage_75"]
    engine.close()


def test_rules_are_checked_and_removed(sqlite_engine: Engine, receiver: Any) -> None:
    ws = sqlite_engine.create_workspace("acme").id
    sqlite_engine.debit(ws, "1", key="leads-known", workflow="leads")
    for bad in (
        {"webhook": "ftp://x"},
        {"block": "no-slash"},
        {"webhook": receiver.url, "block": "custom-webhook/x"},
        {"webhook": receiver.url, "kind": "regression", "workflow": "leads", "factor": "1"},
        {"webhook": receiver.url, "kind": "run_above", "above": "5"},
        {"webhook": receiver.url, "kind": "weekly"},
        {"webhook": receiver.url, "kind": "run_above", "workflow": "no_such_wf", "above": "5"},
    ):
        with pytest.raises(InvalidInput):
            sqlite_engine.add_notification(ws, **bad)
    rule = sqlite_engine.add_notification(ws, kind="regression", workflow="leads", factor="1.5",
                                          runs=5, webhook=receiver.url)  # fmt: skip
    assert [(r.kind, r.factor, r.runs) for r in sqlite_engine.notification_rules(ws)] == [
        ("regression", D("1.5"), 5)
    ]
    sent = sqlite_engine.test_notification(ws, rule.id)
    assert (sent.event, sent.state) == ("test", "sent") and receiver.events() == ["test"]
    sqlite_engine.remove_notification(ws, rule.id)
    assert sqlite_engine.notification_rules(ws) == []


def test_a_prefect_webhook_block_delivers(
    sqlite_engine: Engine, receiver: Any, prefect_harness: None
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="spojit", url=receiver.url, allow_private_urls=True,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save("spojit-alerts", overwrite=True)  # fmt: skip
    ws = sqlite_engine.create_workspace("acme", plan="free").id
    sqlite_engine.add_notification(ws, block="custom-webhook/spojit-alerts")
    sqlite_engine.debit(ws, D("90"), key="d1")
    sqlite_engine.notifier.flush()
    subjects = [b["subject"] for b in receiver.bodies]
    assert subjects == ["acme: 75% of this period's credits used",
                        "acme: 90% of this period's credits used"]  # fmt: skip
    assert "has used 90%" in receiver.bodies[1]["text"]


def test_a_dead_receiver_never_fails_a_prefect_run(
    sqlite_engine: Engine, prefect_harness: None
) -> None:
    """A real flow run crosses every threshold while its alerts' receiver is down: the run
    completes, its credits are billed, the alerts wait in the outbox."""
    from spojit_engine.metering.meter.runtime import Runtime, use_runtime
    from spojit_engine.nodes import Response, Variable, Workflow

    ws = sqlite_engine.create_workspace("acme", plan="free").id
    sqlite_engine.debit(ws, D("99.98"), key="almost-all", workflow="tiny")  # the run: the rest
    sqlite_engine.add_notification(ws, webhook=_dead_url())
    sqlite_engine.add_notification(ws, kind="run_above", workflow="tiny", above="0.000001",
                                   webhook=_dead_url())  # fmt: skip
    with use_runtime(Runtime.create(sqlite_engine)):
        result = Workflow("tiny", [Variable("stage", "new"), Response("reply", "ok {stage}")]).run(
            {"id": 1}, workspace="acme"
        )
    assert result == "ok new"
    sqlite_engine.notifier.flush()
    sent = sqlite_engine.notifications_sent(ws)
    assert {s.event for s in sent} >= {"usage_100", "run_above_limit"}
    assert {s.state for s in sent} == {"pending"}  # each waits for its retry
    assert sqlite_engine.balance(ws).consumed == D("100")


def _fetch(value: Any) -> dict[str, Any]:
    return {"fetched": value}


def test_the_guards_pause_and_resume_alert_once_each(
    sqlite_engine: Engine, receiver: Any, prefect_harness: None
) -> None:
    """The guard pauses a workspace that still has 0.41 credits (its 1.00-credit step did not
    fit): "out of credits" comes then, "resumed" when the guard resumes — not before, on a grant
    that still falls short — and each once per pause."""
    from spojit_engine.metering.meter.runtime import Runtime, use_runtime
    from spojit_engine.nodes import Connector, Workflow

    engine = sqlite_engine
    ws = engine.create_workspace("acme", plan="free").id  # 100 credits
    engine.add_notification(ws, webhook=receiver.url)
    engine.debit(ws, D("99.59"), key="drain", workflow="other")
    workflow = Workflow("leads", [Connector("fetch", _fetch, mode="direct")])  # 1.00 a run

    def events_after(action: Any) -> list[str]:
        action()
        engine.notifier.flush()
        return [e for e in receiver.events() if e in ("out_of_credits", "resumed")]

    def refused_run() -> None:
        with pytest.raises(InsufficientCredits):
            workflow.run(None, workspace=ws)

    with use_runtime(Runtime.create(engine)):
        assert events_after(refused_run) == ["out_of_credits"]
        out = receiver.bodies[-1]
        assert (
            out["remaining"] == "0.410000" and "has 0.41 credits, less than the 1.00" in out["text"]
        )
        assert "paused the scheduled and webhook runs" in out["text"] and out["paused_at"]
        assert events_after(refused_run) == ["out_of_credits"]  # the same pause: told once
        short = lambda: engine.grant(ws, D("0.05"), kind="promo", key="g1")  # noqa: E731
        assert events_after(short) == ["out_of_credits"]  # 0.46 < 1.00: still paused
        assert engine.guard.state(ws).stopped  # type: ignore[union-attr]
        top_up = lambda: engine.grant(ws, D("1"), kind="promo", key="g2")  # noqa: E731
        assert events_after(top_up) == ["out_of_credits", "resumed"]
        assert events_after(lambda: engine.grant(ws, D("1"), kind="promo", key="g3")) == [
            "out_of_credits", "resumed",
        ]  # fmt: skip
        workflow.run(None, workspace=ws)  # 2.46 -> 1.46
        workflow.run(None, workspace=ws)  # -> 0.46
        assert events_after(refused_run) == ["out_of_credits", "resumed", "out_of_credits"]


def test_removing_a_rule_drops_its_undelivered_alerts_and_keeps_what_was_sent(
    engine: Engine, receiver: Any
) -> None:
    """Decided: an alert never delivered goes with its rule (it would name a rule that is gone
    and retry for nobody); one already sent stays as history."""
    ws = engine.create_workspace("acme", plan="free").id
    delivered = engine.add_notification(ws, webhook=receiver.url)
    stuck = engine.add_notification(ws, webhook=_dead_url())
    engine.debit(ws, D("80"), key="d1")
    engine.notifier.flush()
    states = sorted((s.rule_id == stuck.id, s.state) for s in engine.notifications_sent(ws))
    assert states == [(False, "sent"), (True, "pending")]
    engine.remove_notification(ws, stuck.id)
    engine.remove_notification(ws, delivered.id)
    [kept] = engine.notifications_sent(ws)
    assert (kept.rule_id, kept.state, kept.subject) == (
        delivered.id, "sent", "acme: 75% of this period's credits used",
    )  # fmt: skip


def test_a_run_above_its_limit_is_told_once_it_ended_with_what_it_cost(
    sqlite_engine: Engine, receiver: Any, prefect_harness: None
) -> None:
    """Four 1.00-credit nodes and a limit of 1.50: the sender passes while the run is still going
    (as its background thread may at any time) tell nothing; after the run, one alert says 4.00,
    what the run cost — not 2.00 or 3.00, what it had cost when it crossed the limit."""
    from spojit_engine.metering.meter.runtime import Runtime, use_runtime
    from spojit_engine.nodes import Connector, Workflow

    engine = sqlite_engine
    ws = engine.create_workspace("acme", plan="starter").id
    engine.debit(ws, D("0.1"), key="known", workflow="leads")  # a rule names a known workflow
    engine.add_notification(ws, kind="run_above", workflow="leads", above="1.5",
                            webhook=receiver.url)  # fmt: skip

    def mid_run(value: Any) -> Any:
        engine.notifier.flush()  # 3.00 spent so far, its record written before this runs
        return value

    nodes = [Connector(f"n{i}", _fetch) for i in (1, 2)] + [Connector("n3", mid_run),
                                                           Connector("n4", _fetch)]  # fmt: skip
    with use_runtime(Runtime.create(engine)):
        Workflow("leads", nodes).run(None, workspace=ws)
    engine.notifier.flush()
    [alert] = [b for b in receiver.bodies if b["event"] == "run_above_limit"]
    assert alert["credits"] == "4.000000" and "has cost 4.00 credits" in alert["text"]
