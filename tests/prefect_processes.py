"""Real processes for end-to-end tests: a fresh PostgreSQL database, process groups started and
stopped whole (their output in a log file each), bounded waits that fail with the logs' tails,
and the Prefect API through its real client. Shared by ``tests/guards/test_guard_e2e.py`` and
``tests/test_operations_guide.py``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(prefix: str) -> Iterator[str]:
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
