"""The operator's guide, run as written: the ``sh e2e:…`` code blocks of ``docs/operations.md``
on a real ``prefect server start``, a process worker and ``spojit serve`` (SQLite ledger in
SPOJIT_HOME, as the guide's defaults). The workspace runs out, the guard pauses its schedule,
webhooks queue, ``spojit credits grant`` brings it back within seconds, the queued requests are
replayed once each, and the worker's log holds no traceback. The doc and the test cannot drift:
the test has no commands of its own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Processes, Server, free_port, wait_until

from spojit_engine import Engine

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
SETTINGS = Path(__file__).resolve().parents[1] / "spojit_engine" / "settings.py"
BIN = Path(sys.executable).parent
STEPS = ("server", "pool", "worker", "init", "serve", "deploy", "hook", "deployments", "grant",
         "credits")  # fmt: skip
SERVER_START_SECONDS = 240
PHASE_SECONDS = 300
RESUME_SECONDS = 10  # the promise: a grant resumes the schedule within 10 s


def blocks() -> dict[str, tuple[bool, str]]:
    """The guide's runnable blocks: name -> (runs in the background, the shell code)."""
    found = {}
    for info, code in re.findall(r"```sh e2e:(\S+)\n(.*?)```", GUIDE.read_text(), re.S):
        background = info.startswith("background:")
        found[info.removeprefix("background:")] = (background, code.strip())
    return found


def test_the_guide_has_every_step_and_lists_every_setting() -> None:
    assert tuple(blocks()) == STEPS
    fields = re.findall(r"^    ([a-z_]+): ", SETTINGS.read_text(), re.M)
    assert fields, "no settings found"
    text = GUIDE.read_text()
    assert [f for f in fields if f"`SPOJIT_{f.upper()}`" not in text] == []


class Guide:
    def __init__(self, tmp_path: Path, procs: Processes) -> None:
        self.procs, self.cwd = procs, tmp_path
        prefect_port, serve_port = free_port(), free_port()
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
        self.env = keep | {
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "SPOJIT_HOME": str(tmp_path / "spojit_home"),
            "PREFECT_HOME": str(tmp_path / "prefect_home"),
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_SERVER_API_PORT": str(prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "SPOJIT_PUBLIC_URL": f"http://127.0.0.1:{serve_port}",
            "SPOJIT_PORT": str(serve_port),
            "SPOJIT_GUARD_RECONCILE_INTERVAL_SECONDS": "1",
            "SPOJIT_LLM_MODE": "mock",
            "COLUMNS": "200",  # tables on one line each, so a status reads as one string
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.steps = blocks()
        self.server = Server(self.env["PREFECT_API_URL"])

    def run(self, step: str) -> str:
        background, code = self.steps[step]
        assert not background, step
        command = ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(
            command, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{step}: {done.stderr}\n{self.procs.tail()}"
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def start(self, step: str) -> None:
        background, code = self.steps[step]
        assert background, step
        self.procs.start(step, ["bash", "-euo", "pipefail", "-c", f"exec {code}"], self.env)


@pytest.mark.e2e
def test_the_operations_guide_end_to_end(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    procs = Processes(tmp_path)
    guide = Guide(tmp_path, procs)
    try:
        with temporary_settings(updates={PREFECT_API_URL: guide.server.api_url}):
            _scenario(guide)
    finally:
        procs.stop_all()
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Traceback" not in worker_log, worker_log[-4000:]
    assert "Out of credits" in worker_log  # the refusals are there, as one-line warnings


def _scenario(guide: Guide) -> None:
    procs, server = guide.procs, guide.server
    guide.start("server")
    wait_until("the Prefect server", server.healthy, SERVER_START_SECONDS, procs)
    guide.run("pool")
    guide.start("worker")
    guide.run("init")
    guide.start("serve")
    guide.run("deploy")
    deployed = json.loads((guide.cwd / "digest.json").read_text())
    deployment = deployed["deployment_id"]
    assert deployed["webhook_url"] == f"{guide.env['SPOJIT_PUBLIC_URL']}/hooks/digest"
    wait_until("spojit serve", lambda: _answers(guide), 120, procs)
    started = json.loads(guide.run("hook"))
    assert started["status"] == "started", started

    engine = Engine(f"sqlite:///{guide.env['SPOJIT_HOME']}/spojit.db")
    try:
        ws = engine.workspace_id("acme")

        def completed(run_id: str) -> bool:
            return any(str(r.id) == run_id for r in server.runs(deployment, "COMPLETED"))

        wait_until("the webhook's run", lambda: completed(started["flow_run_id"]),
                   PHASE_SECONDS, procs)  # fmt: skip

        # Run out: other work spent the rest; the next scheduled run is refused at its first
        # node, and the guard switches the schedule off.
        engine.debit(ws, engine.balance(ws).remaining, key="spent-elsewhere")

        def paused() -> bool:
            state = engine.guard.state(ws)
            return state is not None and bool(state.pauses_applied_at)

        wait_until("the guard to pause the schedule", paused, PHASE_SECONDS, procs)
        assert server.actives(deployment) == [False]
        queued = [json.loads(guide.run("hook")) for _ in range(2)]
        assert [q["status"] for q in queued] == ["queued", "queued"], queued
        assert "paused by the guard" in guide.run("deployments")

        granted = guide.run("grant")
        assert "Added 50.00 credits" in granted and "The guard resumed: digest" in granted

        def resumed() -> bool:
            return server.actives(deployment) == [True] and all(
                _request_started(engine, q["request_id"]) for q in queued
            )

        wait_until("the resume and the replay", resumed, RESUME_SECONDS, procs)
        runs = {
            q["request_id"]: _runs_of_request(server, deployment, q["request_id"]) for q in queued
        }
        assert all(len(r) == 1 for r in runs.values()), runs  # replayed once each
        wait_until(
            "the replayed runs",
            lambda: all(completed(str(r[0].id)) for r in
                        (_runs_of_request(server, deployment, q["request_id"]) for q in queued)),
            PHASE_SECONDS,
            procs,
        )  # fmt: skip
        assert "active" in guide.run("deployments")
        assert "support ticket 4711" in " ".join(guide.run("credits").split())
        assert engine.balance(ws).remaining > Decimal(0)
        assert engine.verify(ws) == 1
    finally:
        engine.close()


def _answers(guide: Guide) -> bool:
    import httpx

    try:
        return (
            httpx.get(guide.env["SPOJIT_PUBLIC_URL"] + "/api/v1/plans", timeout=2).status_code
            == 401
        )
    except httpx.HTTPError:
        return False


def _request_started(engine: Engine, request_id: int) -> bool:
    from sqlalchemy import select

    from spojit_engine.guards.schema import webhook_queue

    with engine.sa_engine.connect() as conn:
        state = conn.execute(
            select(webhook_queue.c.state).where(webhook_queue.c.id == request_id)
        ).scalar()
    return state == "started"


def _runs_of_request(server: Server, deployment: str, request_id: int) -> list[Any]:
    tag = f"spojit:hook-request={request_id}"
    return [r for r in server.runs(deployment) if tag in (r.tags or [])]
