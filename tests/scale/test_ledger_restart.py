"""The ledger across a PostgreSQL restart, on a private cluster the test starts (never the
shared server): an operation made while the database is down waits for it (bounded) and lands
once; a flow run whose process starts while it is down waits too, and completes; debits racing a
restart are each recorded exactly once; past the bound the caller gets a clear
``LedgerUnavailable`` and nothing was written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PrivateCluster, private_cluster
from sqlalchemy import func, select

from spojit_engine import Engine
from spojit_engine.errors import LedgerUnavailable
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.usage import read_usage
from spojit_engine.money import ucr_to_credits
from spojit_engine.settings import get_settings

pytestmark = pytest.mark.e2e

DEBIT = Decimal("0.5")
ROOT = Path(__file__).resolve().parents[2]
# A worker's flow-run process: Prefect (an ephemeral server), then the example's nodes, whose
# first one builds the Engine from SPOJIT_DATABASE_URL, as a deployment's run does.
RUN_DIGEST = (
    "import json; from flows.nightly_digest import workflow; "
    "answer = workflow.run({'day': '2026-11-27'}, workspace='fresh'); "
    "print(json.dumps({'digest': answer['digest'], 'nodes': len(workflow.steps)}))"
)
PROCESS_SECONDS = 240


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


def test_a_flow_run_whose_process_starts_while_the_database_is_down_waits_and_completes(
    cluster: PrivateCluster, ledger: Engine, tmp_path: Path
) -> None:
    ws = ledger.create_workspace("fresh", plan="starter")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    env |= {
        "SPOJIT_DATABASE_URL": ledger.database_url,
        "SPOJIT_HOME": str(tmp_path / "spojit"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    cluster.stop()
    out = tmp_path / "run.out"
    with out.open("w") as stdout:
        run = subprocess.Popen([sys.executable, "-c", RUN_DIGEST], cwd=ROOT, env=env, text=True,
                               stdout=stdout, stderr=subprocess.PIPE)  # fmt: skip
    err = _Lines(run)
    try:
        assert err.wait_for("Waiting for the database", PROCESS_SECONDS), err.text()
    finally:
        cluster.start()
    assert run.wait(timeout=PROCESS_SECONDS) == 0, err.text()
    answer = json.loads(out.read_text().splitlines()[-1])
    assert answer["digest"].startswith("Digest for 2026-11-27"), err.text()
    records = read_usage(ledger.sa_engine, workspace_id=ws.id)
    assert [r.status for r in records] == ["ok"] * answer["nodes"]  # each node, once
    assert len({r.key for r in records}) == len(records)
    assert ledger.balance(ws.id).consumed == ucr_to_credits(sum(r.credits_ucr for r in records))
    assert ledger.verify(ws.id) == 1


class _Lines:
    """A process's stderr, read as it comes (on a thread, so every wait has a deadline)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # the end
            self._changed.notify_all()

    def wait_for(self, part: str, seconds: float) -> bool:
        """True once a line holds ``part``; False at the end of the output or the deadline."""
        with self._changed:
            return self._changed.wait_for(
                lambda: any(part in line for line in self.lines) or "" in self.lines, seconds
            ) and any(part in line for line in self.lines)

    def text(self) -> str:
        return "".join(self.lines)


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
