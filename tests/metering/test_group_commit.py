"""Metering off the hot path: how many ledger transactions a node call makes, group commit of a
reserved run's charges, and the crash bound (a process SIGKILLed mid-run, then verify and the
sweeper): nothing overspent, nothing committed lost, usage records always with their charges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from spojit_engine import Engine, Transform
from spojit_engine.clock import utcnow
from spojit_engine.metering.meter.runtime import Runtime, use_runtime
from spojit_engine.metering.store import schema
from spojit_engine.settings import Settings

D = Decimal
BASE_MAP_UCR = 100_000  # prices.toml: transform.map = 0.1


def _entries(engine: Engine, prefix: str) -> tuple[int, int]:
    """(how many, µcr total) of the debit entries whose key starts with ``prefix``."""
    e = schema.entries.c
    with engine.sa_engine.connect() as conn:
        count, total = conn.execute(
            select(func.count(), func.coalesce(-func.sum(e.amount_ucr), 0)).where(
                e.key.like(prefix + "%"), e.kind == "debit"
            )
        ).one()
    return int(count), int(total)


def _usage_rows(engine: Engine, prefix: str) -> int:
    u = schema.usage_records.c
    with engine.sa_engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(u.key.like(prefix + "%"))).scalar_one())


@pytest.fixture
def batching_engine(database_url: str) -> Iterator[Engine]:
    """Batches of 5 calls; the timer far away, so only a full batch or the run's end commits."""
    eng = Engine(database_url, settings=Settings(batch_calls_max=5, batch_commit_ms=60_000))
    yield eng
    eng.close()


class WriteCounter:
    """Counts write transactions (not read snapshots) on an engine: those begun through
    SQLAlchemy, and the fast debits (each its own transaction, sqlite_debit.py, pg_debit.py)."""

    def __init__(self, engine: Engine) -> None:
        self.begun = 0
        event.listen(engine.sa_engine, "begin", self._begin)
        self.engine = engine
        self._one_call_start = self._one_call()

    def _one_call(self) -> int:
        return self.engine.ledger.fast_debit.answered

    @property
    def count(self) -> int:
        return self.begun + self._one_call() - self._one_call_start

    def _begin(self, conn: Any) -> None:
        if not conn.get_execution_options().get("spojit_read_only"):
            self.begun += 1

    def close(self) -> None:
        event.remove(self.engine.sa_engine, "begin", self._begin)


def test_a_node_call_is_one_ledger_transaction(
    batching_engine: Engine, prefect_harness: None
) -> None:
    """In a run without a reservation: a map node call is one write transaction (its base debit
    and its usage record together); the run's workspace is looked up once, not per call."""
    from prefect import flow

    engine = batching_engine
    ws = engine.create_workspace("acme", plan="free").id
    node = Transform("shape", lambda x: x + 1, mode="map")

    @flow(persist_result=False)
    def plain_run(n: int) -> list[int]:
        counter = WriteCounter(engine)
        try:
            node(0)  # the first call of the run also finds its workspace
            before, reads_before = counter.count, _reads(engine)
            out = [node(i) for i in range(n)]
            return [counter.count - before, _reads(engine) - reads_before, *out]
        finally:
            counter.close()

    with use_runtime(Runtime.create(engine)):
        writes, reads, *out = plain_run(4)
    assert out == [1, 2, 3, 4]
    assert writes == 4  # one per call
    assert reads == 0  # no workspace lookup, no reservation lookup per call
    assert _usage_rows(engine, "node:") == 5
    balance = engine.balance(ws)
    assert balance.consumed == D("0.5")
    engine.verify(ws)


_READS: dict[int, int] = {}


def _reads(engine: Engine) -> int:
    """Read snapshots begun on ``engine`` so far (a listener installed on first use), not
    counting the notification sender's: it reads its rules in its own thread, after a commit,
    never in a node call's way."""
    key = id(engine.sa_engine)
    if key not in _READS:
        _READS[key] = 0

        def begin(conn: Any) -> None:
            sender = threading.current_thread().name == "spojit-notify"
            if conn.get_execution_options().get("spojit_read_only") and not sender:
                _READS[key] += 1

        event.listen(engine.sa_engine, "begin", begin)
    return _READS[key]


def test_a_reserved_run_commits_its_charges_in_batches(
    batching_engine: Engine, prefect_harness: None
) -> None:
    from prefect import flow
    from prefect.context import FlowRunContext

    engine = batching_engine
    ws = engine.create_workspace("acme", plan="free").id
    node = Transform("shape", lambda x: x * 2, mode="map")

    @flow(persist_result=False)
    def reserved_run(n: int) -> tuple[str, list[int], int, int]:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        run_id = str(context.flow_run.id)
        engine.reserve_run(ws, D("10"), flow_run_id=run_id)
        counter = WriteCounter(engine)
        try:
            out = [node(i) for i in range(n)]
        finally:
            counter.close()
        return run_id, out, _entries(engine, "node:")[0], counter.count

    with use_runtime(Runtime.create(engine)):
        run_id, out, committed_in_run, writes = reserved_run(12)
    assert out == [i * 2 for i in range(12)]
    assert committed_in_run == 10  # two full batches of 5; two charges still waiting
    assert writes == 2  # one transaction per batch
    assert engine.balance(ws).held == D("10") - D("1.0")
    closed = engine.close_run_reservation(run_id)  # commits the last two, gives back the rest
    assert closed is not None and (closed.state, closed.settled) == ("settled", D("1.2"))
    assert _entries(engine, "node:") == (12, 12 * BASE_MAP_UCR)
    assert _usage_rows(engine, "node:") == 12
    balance = engine.balance(ws)
    assert (balance.held, balance.consumed, balance.remaining) == (D("0"), D("1.2"), D("98.8"))
    engine.verify(ws)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from spojit_engine import Engine
    from spojit_engine.metering.meter.batch import Charge, batch_for
    from spojit_engine.metering.core.records import Usage
    from spojit_engine.metering.store.usage import UsageRow
    from spojit_engine.clock import utcnow

    url, ws, run, amount = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    engine = Engine(url)
    batch = batch_for(engine.ledger, ws, run, calls_max=7, commit_seconds=3600)
    i = 0
    while batch.admit(amount):  # what a node call does before it runs
        key = f"node:{run}:{i}"
        row = UsageRow(key=key, workspace_id=ws, workflow="crash", flow_run_id=run,
                       task_run_id=None, attempt=1, node_name="shape", node_type="transform",
                       mode="map", models=None, tokens_in=0, tokens_out=0, tokens_cached=0,
                       llm_calls=0, credits_ucr=amount, member_id=None, test_run=False,
                       status="ok", error=None, created_at=utcnow())
        batch.add(Charge(key + ":base", amount, Usage("crash", "transform.map"), row))
        i += 1
        if i % 7 == 0:
            print("committed", i, flush=True)
    print("reservation used up at", i, flush=True)
    time.sleep(3600)
    """
)


@pytest.mark.parametrize("when", ["mid_run", "reservation_used_up"])
def test_a_process_killed_mid_run_never_overspends_and_keeps_every_commit(
    engine: Engine, database_url: str, tmp_path: Path, when: str
) -> None:
    ws = engine.create_workspace("acme", plan="free").id
    run = f"crash-{when}"
    amount = 1_000
    reserve_ucr = 30_500 if when == "reservation_used_up" else 5_000_000
    held = engine.reserve_run(ws, D(reserve_ucr).scaleb(-6), flow_run_id=run,
                              ttl=timedelta(minutes=5))  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, database_url, ws, run, str(amount)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SPOJIT_HOME": str(tmp_path)},
    )
    assert child.stdout is not None
    seen = []
    try:
        for line in child.stdout:
            seen.append(line.strip())
            if (when == "mid_run" and len(seen) == 3) or line.startswith("reservation used"):
                break
        child.send_signal(signal.SIGKILL)  # mid-run: charges waiting, maybe mid-commit
    finally:
        child.kill()
        child.wait()
    assert seen, "the child process never committed a batch"
    count, total = _entries(engine, f"node:{run}:")
    assert count % 7 == 0 and count >= 21  # whole batches only: a commit is all or nothing
    assert total == count * amount <= reserve_ucr  # never more than the reservation
    assert _usage_rows(engine, f"node:{run}:") == count  # each record with its charge
    if when == "reservation_used_up":
        assert seen[-1] == "reservation used up at 30" and count == 28  # 2 waited: lost
    engine.verify(ws)
    # The sweeper voids the reservation once its ttl passes; what was drawn stays spent.
    later = Engine(database_url, clock=lambda: utcnow() + timedelta(minutes=6))
    try:
        assert ws in later.sweep()
        closed = later.close_run_reservation(run)
        assert closed is not None and closed.id == held.id
        assert (closed.state, closed.settled) == ("expired", D(total).scaleb(-6))
        balance = later.balance(ws)
        assert balance.held == 0
        assert balance.consumed == D(total).scaleb(-6)
        later.verify(ws)
    finally:
        later.close()
