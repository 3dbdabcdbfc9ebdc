"""The ledger across a PostgreSQL restart, on a private cluster the test starts (never the
shared server): an operation made while the database is down waits for it (bounded) and lands
once; debits racing a restart are each recorded exactly once; past the bound the caller gets a
clear ``LedgerUnavailable`` and nothing was written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from e2e_support import PrivateCluster, private_cluster
from sqlalchemy import func, select

from spojit_engine import Engine
from spojit_engine.errors import LedgerUnavailable
from spojit_engine.metering import schema
from spojit_engine.settings import get_settings

pytestmark = pytest.mark.e2e

DEBIT = Decimal("0.5")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as started:
        yield started


@pytest.fixture
def ledger(cluster: PrivateCluster, request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = Engine(cluster.create_database(f"ledger_{request.node.name[-20:].lower()}"))
    yield engine
    engine.close()


def _entries(engine: Engine, key_prefix: str) -> int:
    with engine.sa_engine.connect() as conn:
        e = schema.entries.c
        return int(conn.execute(select(func.count()).where(e.key.like(f"{key_prefix}%"))).scalar())


def test_a_debit_made_while_the_database_is_down_lands_once_it_is_back(
    cluster: PrivateCluster, ledger: Engine
) -> None:
    ws = ledger.create_workspace("down", plan="starter")
    before = ledger.balance(ws.id).remaining
    cluster.stop()
    outcome: dict[str, Any] = {}

    def debit() -> None:
        try:
            outcome["entry"] = ledger.debit(ws.id, DEBIT, key="while-down")
        except Exception as exc:  # reported below
            outcome["error"] = exc

    worker = threading.Thread(target=debit)
    worker.start()
    worker.join(timeout=2)
    assert worker.is_alive(), "the debit should be waiting for the database, not have answered"
    cluster.start()
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert not outcome["entry"].replayed
    assert _entries(ledger, "while-down") == 1
    assert ledger.balance(ws.id).remaining == before - DEBIT
    assert ledger.verify(ws.id) == 1


def test_debits_racing_a_restart_are_each_recorded_exactly_once(
    cluster: PrivateCluster, ledger: Engine
) -> None:
    ws = ledger.create_workspace("racing", plan="starter")
    before = ledger.balance(ws.id).remaining
    answered: list[str] = []
    errors: list[BaseException] = []
    started = threading.Barrier(5)

    def client(n: int) -> None:
        started.wait()
        try:
            for i in range(40):
                key = f"race:{n}:{i}"
                ledger.debit(ws.id, DEBIT, key=key)
                answered.append(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    while len(answered) < 20 and not errors:
        threading.Event().wait(0.05)
    cluster.restart()  # fast: every session is cut off, mid-transaction or not
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(answered) == 160
    assert _entries(ledger, "race:") == 160  # none lost, none doubled
    assert ledger.balance(ws.id).remaining == before - 160 * DEBIT
    assert ledger.verify(ws.id) == 1


def test_past_the_bound_the_caller_gets_a_clear_error_and_nothing_is_written(
    cluster: PrivateCluster, ledger: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = ledger.create_workspace("gone", plan="starter")
    monkeypatch.setattr(get_settings(), "ledger_retry_seconds_max", 1.0)
    cluster.stop()
    try:
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            ledger.debit(ws.id, DEBIT, key="never")
    finally:
        cluster.start()
    assert _entries(ledger, "never") == 0
    assert ledger.verify(ws.id) == 1
