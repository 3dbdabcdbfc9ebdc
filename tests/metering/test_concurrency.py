"""The concurrency proof (DESIGN §3 "Admission is atomic"): OS processes racing on one workspace,
on a real SQLite file and on the real PostgreSQL, can never spend the same credit twice, nor
debit the same idempotency key twice.

Each worker is a separate process started with the "spawn" method and opens its own ``Engine``;
all of them wait on one barrier so they start debiting at the same moment. Workers hand back what
happened to every attempt (debited / replayed / refused / error); the test then checks the totals
against the ledger itself (SQL counts, ``breakdown``, ``balance``, ``verify``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from spojit_engine import Engine, InsufficientCredits
from spojit_engine.metering.store import schema

pytestmark = pytest.mark.slow

PROCESSES = 8
BARRIER_TIMEOUT_SECONDS = 120.0
# Sizes: the first race is the full proof (8 x 500 against 1,000 credits); the duplicate-key
# races are smaller to keep the module's runtime modest (every key is still contested by all 8).
UNIQUE_KEYS_PER_PROCESS, UNIQUE_CREDITS = 500, 1000
DUP_KEYS, DUP_CREDITS = 100, 1000
SHORT_KEYS, SHORT_CREDITS = 240, 200

# Set in each worker by the pool's initializer (a Barrier cannot travel as a task argument).
_barrier: Any = None


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


@dataclass(frozen=True)
class WorkerReport:
    pid: int
    tag: str
    # (key, outcome, entry id or error text); outcome is debited | replayed | refused | error
    outcomes: list[tuple[str, str, Any]]
    race_seconds: float
    by_function: int  # debits posted by PostgreSQL's spojit_debit in one call (0 on SQLite)

    def count(self, outcome: str) -> int:
        return sum(1 for _, o, _ in self.outcomes if o == outcome)


def _ready_worker() -> int:
    _barrier.wait(timeout=BARRIER_TIMEOUT_SECONDS)
    return os.getpid()


def _debit_worker(database_url: str, workspace_id: str, keys: list[str], tag: str) -> WorkerReport:
    """One process: its own Engine, wait for everyone, then debit 1 credit per key."""
    engine = Engine(database_url)
    try:
        _barrier.wait(timeout=BARRIER_TIMEOUT_SECONDS)
        outcomes: list[tuple[str, str, Any]] = []
        started = time.perf_counter()
        for key in keys:
            try:
                entry = engine.debit(workspace_id, Decimal(1), key=key, workflow=tag)
            except InsufficientCredits as exc:
                outcomes.append((key, "refused", (exc.needed, exc.available)))
            except Exception as exc:  # reported to the test, which fails on any
                outcomes.append((key, "error", f"{type(exc).__name__}: {exc}"))
            else:
                outcomes.append((key, "replayed" if entry.replayed else "debited", entry.id))
        by_function = engine.ledger.fast_debit.answered
        return WorkerReport(os.getpid(), tag, outcomes, time.perf_counter() - started, by_function)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """8 spawned worker processes sharing one (cyclic) barrier, started once for the module.

    Each race submits exactly 8 tasks that all block on the barrier, so each task runs in a
    different process, and all of them start debiting together.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    with ProcessPoolExecutor(
        max_workers=PROCESSES, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as executor:
        started = time.perf_counter()
        pids = [f.result() for f in [executor.submit(_ready_worker) for _ in range(PROCESSES)]]
        assert len(set(pids)) == PROCESSES
        print(f"\n[pool] {PROCESSES} spawned workers ready in {time.perf_counter() - started:.2f}s")
        yield executor


def _race(
    pool: ProcessPoolExecutor, database_url: str, workspace_id: str, keys_of: list[list[str]]
) -> tuple[list[WorkerReport], float]:
    """Run one worker per key list, all released together; their reports and the wall time."""
    assert len(keys_of) == PROCESSES
    started = time.perf_counter()
    futures = [
        pool.submit(_debit_worker, database_url, workspace_id, keys, f"w{i}")
        for i, keys in enumerate(keys_of)
    ]
    reports = [f.result() for f in futures]
    assert len({r.pid for r in reports}) == PROCESSES  # truly 8 processes
    return reports, time.perf_counter() - started


def _funded_workspace(engine: Engine, credits: int) -> str:
    """A free-plan workspace topped up so that exactly ``credits`` remain."""
    ws = engine.create_workspace(f"race-{uuid.uuid4().hex[:12]}", plan="free")
    allowance = engine.balance(ws.id).remaining  # the free plan's monthly allowance (100)
    assert 0 < allowance < credits
    engine.grant(ws.id, credits - allowance, kind="topup", key=f"topup:{ws.id}")
    assert engine.balance(ws.id).remaining == Decimal(credits)
    return ws.id


def _debit_entries(engine: Engine, workspace_id: str) -> dict[str, tuple[int, str]]:
    """Every debit entry of the workspace: key -> (entry id, workflow)."""
    e = schema.entries.c
    with engine.sa_engine.connect() as conn:
        rows = conn.execute(
            select(e.key, e.id, e.workflow).where(e.workspace_id == workspace_id, e.kind == "debit")
        ).all()
    return {key: (entry_id, workflow) for key, entry_id, workflow in rows}


def _posting_count(engine: Engine, workspace_id: str) -> int:
    e, p = schema.entries.c, schema.postings.c
    with engine.sa_engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(schema.postings)
                .join(schema.entries, p.entry_id == e.id)
                .where(e.workspace_id == workspace_id, e.kind == "debit")
            ).scalar_one()
        )


def _errors(reports: list[WorkerReport]) -> list[str]:
    return [
        f"pid {r.pid} key {k}: {detail}"
        for r in reports
        for k, o, detail in r.outcomes
        if o == "error"
    ]


def _summary(label: str, database_url: str, reports: list[WorkerReport], wall: float) -> str:
    attempts = sum(len(r.outcomes) for r in reports)
    race = max(r.race_seconds for r in reports)
    backend = database_url.split(":", 1)[0]
    return (
        f"\n[{label} / {backend}] {attempts} attempts by {len(reports)} processes: "
        f"race {race:.2f}s ({attempts / race:.0f} attempts/s), wall {wall:.2f}s; "
        + ", ".join(
            f"{o}={sum(r.count(o) for r in reports)}"
            for o in ("debited", "replayed", "refused", "error")
        )
    )


def _check_ledger(engine: Engine, workspace_id: str, remaining: int) -> None:
    assert engine.balance(workspace_id).remaining == Decimal(remaining)
    assert engine.balance(workspace_id).held == 0
    assert engine.verify(workspace_id) == 1


def test_unique_keys_never_overspend(
    database_url: str, engine: Engine, pool: ProcessPoolExecutor
) -> None:
    """8 processes x 500 distinct keys of 1 credit against exactly 1,000 credits: exactly 1,000
    debits succeed, the other 3,000 are refused with 0 available, the balance ends at 0."""
    per_process, credits = UNIQUE_KEYS_PER_PROCESS, UNIQUE_CREDITS
    ws = _funded_workspace(engine, credits)
    keys_of = [[f"u{p}-{i}" for i in range(per_process)] for p in range(PROCESSES)]

    reports, wall = _race(pool, database_url, ws, keys_of)
    print(_summary("unique keys", database_url, reports, wall))

    assert _errors(reports) == []
    debited = Counter({r.tag: r.count("debited") for r in reports})
    assert sum(debited.values()) == credits
    assert sum(r.count("refused") for r in reports) == PROCESSES * per_process - credits
    assert sum(r.count("replayed") for r in reports) == 0
    refusals = {detail for r in reports for _, o, detail in r.outcomes if o == "refused"}
    # (needed, available): a debit is refused only once every credit has been spent.
    assert refusals == {(Decimal(1), Decimal(0))}

    entries = _debit_entries(engine, ws)
    assert len(entries) == credits
    succeeded = {(k, entry_id) for r in reports for k, o, entry_id in r.outcomes if o == "debited"}
    assert succeeded == {(k, entry_id) for k, (entry_id, _) in entries.items()}
    # The ledger agrees with each worker's own count, seen through the public breakdown.
    rows = engine.breakdown(ws, by=("workflow",))
    assert {row.workflow: row.calls for row in rows} == +debited
    assert sum(row.credits for row in rows) == Decimal(credits)
    # 100 allowance + 900 top-up: a debit spanning both blocks would need 2 postings; none does.
    assert _posting_count(engine, ws) == credits
    _check_ledger(engine, ws, remaining=0)
    if engine.sa_engine.dialect.name == "postgresql":
        # Every debit that succeeded was one call of spojit_debit (migration 0008); the refused
        # ones were handed back to the Python path, which refused them.
        assert sum(r.by_function for r in reports) == credits


def test_racing_duplicate_keys_debit_once(
    database_url: str, engine: Engine, pool: ProcessPoolExecutor
) -> None:
    """8 processes each debit the same keys (key i in every process) against 1,000 credits:
    each key debits once, the 7 other attempts replay that very entry."""
    n_keys, credits = DUP_KEYS, DUP_CREDITS
    ws = _funded_workspace(engine, credits)
    keys = [f"dup-{i}" for i in range(n_keys)]

    reports, wall = _race(pool, database_url, ws, [keys] * PROCESSES)
    print(_summary("duplicate keys", database_url, reports, wall))

    assert _errors(reports) == []
    assert sum(r.count("refused") for r in reports) == 0
    by_key: dict[str, list[tuple[str, Any, str]]] = defaultdict(list)
    for r in reports:
        for key, outcome, entry_id in r.outcomes:
            by_key[key].append((outcome, entry_id, r.tag))
    entries = _debit_entries(engine, ws)
    assert len(entries) == n_keys
    for key in keys:
        outcomes = by_key[key]
        assert [o for o, _, _ in outcomes].count("debited") == 1, (key, outcomes)
        assert [o for o, _, _ in outcomes].count("replayed") == PROCESSES - 1, (key, outcomes)
        entry_id, workflow = entries[key]
        assert {i for _, i, _ in outcomes} == {entry_id}, (key, outcomes)
        winner = next(tag for o, _, tag in outcomes if o == "debited")
        assert workflow == winner  # the entry is the winner's, replays changed nothing
    assert sum(row.credits for row in engine.breakdown(ws, by=("workflow",))) == Decimal(n_keys)
    _check_ledger(engine, ws, remaining=credits - n_keys)


def test_racing_duplicate_keys_when_credits_are_short(
    database_url: str, engine: Engine, pool: ProcessPoolExecutor
) -> None:
    """More keys than credits, each key attempted by all 8 processes: exactly ``credits`` keys
    debit, each once; the rest are refused by every process."""
    n_keys, credits = SHORT_KEYS, SHORT_CREDITS
    ws = _funded_workspace(engine, credits)
    keys = [f"short-{i}" for i in range(n_keys)]
    # Half the processes walk the keys backwards, so both ends of the key range are contested.
    keys_of = [keys if p % 2 == 0 else keys[::-1] for p in range(PROCESSES)]

    reports, wall = _race(pool, database_url, ws, keys_of)
    print(_summary("duplicate keys, short", database_url, reports, wall))

    assert _errors(reports) == []
    by_key: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for r in reports:
        for key, outcome, entry_id in r.outcomes:
            by_key[key].append((outcome, entry_id))
    entries = _debit_entries(engine, ws)
    assert len(entries) == credits
    won = {k for k, outcomes in by_key.items() if any(o == "debited" for o, _ in outcomes)}
    assert won == set(entries)
    for key in keys:
        outcomes = by_key[key]
        assert len(outcomes) == PROCESSES
        kinds = Counter(o for o, _ in outcomes)
        if key in entries:
            # Debited exactly once; every other attempt is a replay of that entry — never a
            # refusal, since a replay is checked before a refusal is raised.
            assert kinds == {"debited": 1, "replayed": PROCESSES - 1}, (key, outcomes)
            assert {i for _, i in outcomes} == {entries[key][0]}, (key, outcomes)
        else:
            assert kinds == {"refused": PROCESSES}, (key, outcomes)
    _check_ledger(engine, ws, remaining=0)
