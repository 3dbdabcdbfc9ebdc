"""Helpers for the end-to-end tests that start real processes: a fresh database on the shared
PostgreSQL, a private PostgreSQL cluster (``initdb`` + ``pg_ctl`` on a free port, for tests that
restart it), the started processes (each in its own process group), bounded waits, and the
Prefect API through its real client. Loopback only; every wait has a deadline."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

PG_ADMIN_URL = os.environ.get(
    "SPOJIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("SPOJIT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
CLUSTER_START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI but unavailable: {reason}")
    pytest.skip(reason)


@contextmanager
def fresh_database(prefix: str, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh PostgreSQL database (its name) on ``admin_url``'s server, dropped at the end."""
    import psycopg

    admin = admin_url.replace("+psycopg", "")
    try:
        psycopg.connect(admin, connect_timeout=3).close()
    except psycopg.Error as exc:
        _skip_or_fail(f"PostgreSQL at {admin} is unreachable: {str(exc).strip().splitlines()[0]}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (never the shared server on 5432), so a test may
    stop and restart it. Runs as the ``postgres`` OS user when started as root (initdb refuses
    root); its data directory lives under a temporary directory that user can reach."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="spojit_pg_"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = CLUSTER_START_SECONDS) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            _skip_or_fail(f"no initdb in {PG_BIN} (set SPOJIT_TEST_PG_BIN)")
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (``fast``: every session is cut off mid-transaction) and start again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-l", str(self.log), "-w",
                  "restart")  # fmt: skip

    def destroy(self) -> None:
        with suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started private cluster on a free port, stopped and removed at the end."""
    cluster = PrivateCluster(free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


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
        """Newest first, each gone before the next is told: a worker stops while its server
        still answers (no connection errors of the shutdown in its log)."""
        for _, process in reversed(self.started):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_until(
    what: str, check: Callable[[], bool], seconds: float, procs: Processes | None = None
) -> None:
    """Poll ``check`` every second until it is true; fail (with the processes' logs) at the
    deadline or as soon as a watched process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        for name, process in procs.started if procs else []:
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}) while waiting for {what}.\n"
                            f"{procs.tail() if procs else ''}")  # fmt: skip
        time.sleep(1)
    pytest.fail(
        f"Timed out after {seconds:.0f}s waiting for {what}.\n{procs.tail() if procs else ''}"
    )


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


def prefect_environment(
    home: Path, *, prefect_db_url: str, ledger_url: str, port: int
) -> dict[str, str]:
    """The environment of the Prefect server, workers and spojit commands of one test: this
    process's without any SPOJIT_/PREFECT_ setting, plus the test's own."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    return keep | {
        "PREFECT_HOME": str(home / "prefect_home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "3",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "10",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "SPOJIT_HOME": str(home / "spojit_home"),
        "SPOJIT_DATABASE_URL": ledger_url,
        "SPOJIT_LLM_MODE": "mock",
        "SPOJIT_RENEWALS_INTERVAL_SECONDS": "15",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def pg_host_of(admin_url: str = PG_ADMIN_URL) -> str:
    """``user@host:port`` of a PostgreSQL URL."""
    return admin_url.split("://", 1)[1].rsplit("/", 1)[0]


@contextmanager
def prefect_stack(home: Path) -> Iterator[tuple[Any, Server, dict[str, str], Processes]]:
    """What the guard and resume end-to-end tests share: fresh Prefect and ledger databases on
    the shared PostgreSQL, their environment, the (not yet started) server, an ``Engine`` on the
    ledger and the processes to stop; ``PREFECT_API_URL`` points at the server meanwhile."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from spojit_engine import Engine

    procs = Processes(home)
    with (
        fresh_database("spojit_e2e_prefect") as prefect_db,
        fresh_database("spojit_e2e_ledger") as ledger,
    ):
        ledger_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{ledger}"
        env = prefect_environment(
            home,
            prefect_db_url=f"postgresql+asyncpg://{pg_host_of()}/{prefect_db}",
            ledger_url=ledger_url,
            port=free_port(),
        )
        server = Server(env["PREFECT_API_URL"])
        engine = Engine(ledger_url)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield engine, server, env, procs
        finally:
            procs.stop_all()
            engine.close()
