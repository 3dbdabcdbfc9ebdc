"""End to end, nothing faked: a real ``prefect server start`` on a fresh PostgreSQL database, a
process worker, the ledger on PostgreSQL, ``spojit deploy`` as a person types it. Prefect's own
scheduler runs a deployment every few seconds until the workspace's credits run out; the guard
stops it; nothing more is scheduled; a top-up lands and the scheduler runs it again, until the
top-up is spent too. The ``spojit-renewals`` deployment runs on the same worker.

Bounded: every wait has a deadline, and every process is stopped at the end. Loopback only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from spojit_engine import Engine
from spojit_engine.guards.deploy import RENEWALS_NAME

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PG_ADMIN_URL = os.environ.get(
    "SPOJIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BIN = Path(sys.executable).parent
FLOWS = Path(__file__).with_name("flows.py")
RUN_COST = Decimal("1.01")  # flows.py: a trigger (0.01) and a direct connector (1.00)
INTERVAL_SECONDS = 4
SERVER_START_SECONDS = 240  # a fresh PostgreSQL database is migrated first
PHASE_SECONDS = 300  # runs are processes of their own: a few seconds each on a busy machine
QUIET_SECONDS = 20  # several scheduler loops and intervals: long enough to see nothing happen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped at the end."""
    import psycopg

    admin = PG_ADMIN_URL.replace("+psycopg", "")
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {reason}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {reason}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """Started processes, each in its own process group, stopped (group and all) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process))
        return process

    def tail(self) -> str:
        out = []
        for name, _ in self.started:
            lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name} (last lines) ---\n" + "\n".join(lines[-40:]))
        return "\n".join(out)

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_until(what: str, check: Callable[[], bool], seconds: float, procs: Processes) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        for name, process in procs.started:
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}) while waiting for {what}.\n"
                            f"{procs.tail()}")  # fmt: skip
        time.sleep(1)
    pytest.fail(f"Timed out after {seconds:.0f}s waiting for {what}.\n{procs.tail()}")


class Server:
    """The Prefect API of the test, through the real client."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    @contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(self.api_url) as client:
            yield client

    def healthy(self) -> bool:
        try:
            with self.client() as client:
                return client.api_healthcheck() is None
        except Exception:
            return False

    def runs(self, deployment_id: str, *states: str) -> list[Any]:
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        state_filter = (
            FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType(s) for s in states])
                )
            )
            if states
            else None
        )
        with self.client() as client:
            return list(
                client.read_flow_runs(
                    deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=[UUID(deployment_id)])
                    ),
                    flow_run_filter=state_filter,
                    limit=200,
                )
            )

    def actives(self, deployment_id: str) -> list[bool]:
        with self.client() as client:
            return [s.active for s in client.read_deployment(UUID(deployment_id)).schedules]

    def deployment_id(self, name: str) -> str:
        with self.client() as client:
            return str(client.read_deployment_by_name(name).id)


def _environment(tmp_path: Path, prefect_db: str, ledger_url: str, port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    pg_host = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
    return keep | {
        "PREFECT_HOME": str(tmp_path / "prefect_home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg_host}/{prefect_db}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "3",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "10",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "SPOJIT_HOME": str(tmp_path / "spojit_home"),
        "SPOJIT_DATABASE_URL": ledger_url,
        "SPOJIT_LLM_MODE": "mock",
        "SPOJIT_RENEWALS_INTERVAL_SECONDS": "15",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def test_the_scheduler_runs_until_credits_run_out_then_stops_and_resumes_after_a_top_up(
    tmp_path: Path,
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    procs = Processes(tmp_path)
    with _database("spojit_e2e_prefect") as prefect_db, _database("spojit_e2e_ledger") as ledger:
        ledger_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{ledger}"
        port = _free_port()
        env = _environment(tmp_path, prefect_db, ledger_url, port)
        server = Server(env["PREFECT_API_URL"])
        engine = Engine(ledger_url)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                _scenario(engine, server, env, procs)
        finally:
            procs.stop_all()
            engine.close()


def _scenario(engine: Engine, server: Server, env: dict[str, str], procs: Processes) -> None:
    procs.start("server", [str(BIN / "prefect"), "server", "start"], env)
    wait_until("the Prefect server", server.healthy, SERVER_START_SECONDS, procs)

    ws = engine.create_workspace("e2e", plan="free")
    engine.debit(ws.id, engine.balance(ws.id).remaining - 2 * RUN_COST, key="leave-two-runs")
    deployed = subprocess.run(
        [str(BIN / "spojit"), "deploy", str(FLOWS), "--name", "ticks", "--interval",
         str(INTERVAL_SECONDS), "--workspace", "e2e", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    deployment = json.loads(deployed.stdout)["deployment_id"]
    procs.start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", "spojit"], env)

    def completed() -> int:
        return len(server.runs(deployment, "COMPLETED"))

    def stopped() -> bool:  # and its schedules switched off (that follows the state's commit)
        state = engine.guard.state(ws.id)
        return (
            state is not None and state.state.value == "exhausted" and bool(state.pauses_applied_at)
        )

    def settled() -> bool:  # nothing waiting, handed to the worker, or running
        return server.runs(deployment, "SCHEDULED", "PENDING", "RUNNING") == []

    # 1. The scheduler runs it until the credits for two runs are spent; the guard stops it.
    wait_until("the workspace to run out", stopped, PHASE_SECONDS, procs)
    assert server.actives(deployment) == [False]
    balance = engine.balance(ws.id)
    assert Decimal(0) <= balance.remaining < RUN_COST and balance.overdraft == 0

    # 2. ... and then nothing more is scheduled: runs the worker already had are refused at
    #    their start, and after that no new run appears.
    wait_until("runs already handed out to end", settled, PHASE_SECONDS, procs)
    assert 1 <= completed() <= 2
    before = {r.id for r in server.runs(deployment)}
    time.sleep(QUIET_SECONDS)
    assert {r.id for r in server.runs(deployment)} == before
    done_before = completed()

    # 3. A top-up lands (here, in this process): the same schedule resumes, the scheduler runs
    #    it again, until the top-up is spent and the guard stops it again.
    engine.grant(ws.id, 2 * RUN_COST, kind="topup", key="stripe:cs_e2e")
    assert server.actives(deployment) == [True]
    wait_until("a run after the top-up", lambda: completed() > done_before, PHASE_SECONDS, procs)
    wait_until("the top-up to run out", stopped, PHASE_SECONDS, procs)
    assert server.actives(deployment) == [False]
    balance = engine.balance(ws.id)
    assert Decimal(0) <= balance.remaining < RUN_COST and balance.overdraft == 0
    assert engine.verify(ws.id) == 1

    # 4. spojit-renewals runs on the same worker, on its own schedule.
    renewals = server.deployment_id(f"{RENEWALS_NAME}/{RENEWALS_NAME}")
    wait_until("a spojit-renewals run", lambda: bool(server.runs(renewals, "COMPLETED")),
               PHASE_SECONDS, procs)  # fmt: skip
