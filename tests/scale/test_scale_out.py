"""The scaled setup on one machine, started by ``scripts/scale-up.sh`` as a person would: a
Prefect server on PostgreSQL, a process work pool, two workers, the ledger on the same
PostgreSQL, ``spojit serve``. The PostgreSQL is a private cluster this test starts (so it may
restart it), never the shared server.

Many runs of the example flows (``flows/``) go to both workers against one workspace that runs
out midway: the ledger verifies exactly, nothing is spent twice, the guard paused once, a top-up
resumed. Then the faults, each followed by ``verify``: a webhook flood while paused stays within
the queue bound; PostgreSQL restarted during runs (operations retried by key, nothing doubled);
a worker SIGKILLed inside a metered LLM node (Prefect's zombie automation marks its run Crashed
once its heartbeats stop; the next renewals pass releases its hold; Executions reads crashed).
Deploys run in the environment scale-up writes for people to source, and the webhook flood
posts to the hook URL ``spojit deploy`` printed. Last, ``scripts/scale-down.sh`` stops it all
the way Prefect stops a worker, and its time is printed.

Bounded: every wait has a deadline; ``scripts/scale-down.sh`` and the cluster's removal run at
the end whatever happens. Loopback only."""

from __future__ import annotations

import functools
import json
import os
import runpy
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from e2e_support import BIN, PrivateCluster, Server, free_port, private_cluster, wait_until
from sqlalchemy import text

from spojit_engine import Engine
from spojit_engine.guards.renewals import renew_due
from spojit_engine.guards.runs.crashed import CRASHED

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
EXAMPLES = {"leads": "lead_enrichment", "triage": "support_triage", "digest": "nightly_digest"}
QUEUE_MAX = 3  # SPOJIT_WEBHOOK_QUEUE_MAX of `spojit serve` here
HOLD_TTL = timedelta(seconds=600)
UP_SECONDS = 420  # a fresh Prefect database is migrated first; the machine is shared
RUNS_SECONDS = 300
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
ZOMBIE_SECONDS = 60  # no heartbeat (every 30 s, Prefect's least) for this long: Crashed


class Scale:
    """The started setup: its environment, the Prefect API, the ledger."""

    def __init__(self, tmp: Path, cluster: PrivateCluster) -> None:
        self.state = tmp / "scale"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
        self.env = base | {
            "SPOJIT_SCALE_DIR": str(self.state),
            "SPOJIT_SCALE_PG": f"postgresql://postgres@127.0.0.1:{cluster.port}",
            "SPOJIT_SCALE_PREFECT_PORT": str(free_port()),
            "SPOJIT_SCALE_SERVE_PORT": str(free_port()),
            "SPOJIT_SCALE_WORKER_LIMIT": "2",
            "SPOJIT_SCALE_BIN": str(BIN),
            "SPOJIT_HOME": str(tmp / "spojit_home"),
            "SPOJIT_LLM_MODE": "mock",
            "SPOJIT_WEBHOOK_QUEUE_MAX": str(QUEUE_MAX),
            "SPOJIT_HOLD_TTL_SECONDS": str(int(HOLD_TTL.total_seconds())),
            "SPOJIT_SCALE_ZOMBIE_SECONDS": str(ZOMBIE_SECONDS),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "spojit_engine",  # retries show in the run logs
        }
        self.ledger_url = cluster.url("spojit_ledger")
        self.api_url = f"http://127.0.0.1:{self.env['SPOJIT_SCALE_PREFECT_PORT']}/api"
        self.serve_url = f"http://127.0.0.1:{self.env['SPOJIT_SCALE_SERVE_PORT']}"
        self.env |= {"PREFECT_API_URL": self.api_url, "SPOJIT_DATABASE_URL": self.ledger_url}
        self.server = Server(self.api_url)

    def script(self, name: str) -> str:
        done = subprocess.run([str(SCRIPTS / name)], env=self.env, capture_output=True,
                              text=True, timeout=UP_SECONDS)  # fmt: skip
        assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr}\n{self.logs()}"
        return done.stdout

    def sourced(self) -> dict[str, str]:
        """Our environment with scale-up's env file applied, as a person's shell after
        ``source STATE_DIR/env``."""
        exports = {}
        for line in (self.state / "env").read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            exports[name] = value.strip("'")
        return self.env | exports

    def pid(self, name: str) -> int:
        return int((self.state / f"{name}.pid").read_text())

    def logs(self) -> str:
        out = []
        for log in sorted(self.state.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-60:]
            out.append(f"--- {log.name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    # -- flow runs --------------------------------------------------------------------------

    def submit(self, deployment_id: str, payload: Any = None) -> str:
        with self.server.client() as client:
            run = client.create_flow_run_from_deployment(
                UUID(deployment_id), parameters={"payload": payload}
            )
        return str(run.id)

    def states(self, run_ids: list[str]) -> dict[str, str]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with self.server.client() as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(r) for r in run_ids])),
                limit=len(run_ids),
            )
        return {str(r.id): r.state.type.value if r.state else "PENDING" for r in runs}

    def messages(self, run_ids: list[str]) -> str:
        """Each run's state name and message, and the logs: what a failed assertion shows."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with self.server.client() as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(r) for r in run_ids])),
                limit=len(run_ids),
            )
        lines = [f"{r.name} {r.state.name if r.state else '?'}: "
                 f"{r.state.message if r.state else ''}" for r in runs]  # fmt: skip
        return "\n".join(lines) + "\n" + self.logs()

    def wait_final(self, run_ids: list[str], what: str) -> dict[str, str]:
        found: dict[str, str] = {}

        def final() -> bool:
            try:
                found.update(self.states(run_ids))
            except Exception:  # the API's database may be restarting: ask again
                return False
            return len(found) == len(run_ids) and set(found.values()) <= FINAL

        wait_until(f"{what}: {len(run_ids)} runs to end", final, RUNS_SECONDS)
        return found


@contextmanager
def scaled(tmp_path: Path) -> Iterator[tuple[Scale, PrivateCluster]]:
    with private_cluster() as cluster:
        scale = Scale(tmp_path, cluster)
        try:
            yield scale, cluster
        finally:
            with suppress(Exception):
                subprocess.run([str(SCRIPTS / "scale-down.sh")], env=scale.env, timeout=120)


def test_runs_across_two_workers_run_out_pause_resume_and_survive_faults(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with scaled(tmp_path) as (scale, cluster):
        scale.script("scale-up.sh")
        engine = Engine(scale.ledger_url)
        try:
            with temporary_settings(updates={PREFECT_API_URL: scale.api_url}):
                _scenario(scale, cluster, engine)
        finally:
            engine.close()


def _deploy(scale: Scale) -> tuple[dict[str, str], dict[str, str]]:
    """``spojit deploy`` each example (the digest with a webhook) and the slow flow, in the
    environment scale-up wrote for people; the first alone (it creates the pool and the renewals
    deployment), the rest at once. Returns the deployment ids and the digest's deploy output."""
    flows = {name: ROOT / "flows" / f"{example}.py" for name, example in EXAMPLES.items()}
    flows["slow"] = Path(__file__).with_name("flows.py")
    out = {}
    for batch in (["leads"], [n for n in flows if n != "leads"]):
        started = {
            name: subprocess.Popen(
                [
                    str(BIN / "spojit"),
                    "deploy",
                    str(flows[name]),
                    "--name",
                    name,
                    "--workspace",
                    "scale",
                    "--json",
                    *(["--webhook"] if name == "digest" else []),
                ],
                env=scale.sourced(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in batch
        }
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr
            out[name] = json.loads(stdout)
    return {name: o["deployment_id"] for name, o in out.items()}, out["digest"]


@functools.cache
def _sample_input(example: str) -> Any:
    return runpy.run_path(str(ROOT / "flows" / f"{example}.py"))["sample_input"]


def _wave(scale: Scale, deployed: dict[str, str], each: int) -> list[str]:
    """``each`` runs of every example, with its sample input, to either worker."""
    return [
        scale.submit(deployed[name], _sample_input(example))
        for _ in range(each)
        for name, example in EXAMPLES.items()
    ]


def _scenario(scale: Scale, cluster: PrivateCluster, engine: Engine) -> None:
    ws = engine.create_workspace("scale", plan="free")
    engine.grant(ws.id, 500, kind="promo", key="promo:scale")
    deployed, digest = _deploy(scale)
    hook_url, secret = digest["webhook_url"], digest["webhook_secret"]
    assert hook_url == f"{scale.serve_url}/hooks/digest"  # where spojit serve listens
    assert scale.server.actives(deployed["digest"]) == [True]  # its Trigger's cron

    # 1. One run of each example, on either worker: what a wave costs.
    first = _wave(scale, deployed, 1)
    states = scale.wait_final(first, "the first wave")
    assert set(states.values()) == {"COMPLETED"}, scale.messages(first)
    wave_cost = engine.balance(ws.id).consumed
    _check_ledger(engine, ws.id)

    # 2. Credits for about one wave; two waves go to the two workers at once.
    remaining = engine.balance(ws.id).remaining
    engine.debit(ws.id, remaining - wave_cost, key="leave-one-wave")
    second = _wave(scale, deployed, 2)
    states = scale.wait_final(second, "two waves on one wave of credits")
    done = [r for r, s in states.items() if s == "COMPLETED"]
    assert 1 <= len(done) < len(second), scale.messages(second)
    _check_ledger(engine, ws.id)
    assert _workers_used(scale, first + second) == {"spojit-worker-1", "spojit-worker-2"}
    state = engine.guard.state(ws.id)
    assert state is not None and state.state.value == "exhausted" and state.pauses_applied_at
    assert scale.server.actives(deployed["digest"]) == [False]
    assert _pauses(engine, ws.id) == 1  # one schedule, paused once, however many refusals

    # 3. A webhook flood while paused stays within the queue bound.
    answers = _flood(hook_url, secret, QUEUE_MAX + 5)
    assert answers.count(202) == QUEUE_MAX and answers.count(402) == 5, answers
    assert engine.guard.hooks.queued_count(ws.id) == QUEUE_MAX
    _check_ledger(engine, ws.id)

    # 4. A top-up lands: exactly what the guard paused resumes, the queue replays, runs pass.
    engine.grant(ws.id, wave_cost * 6, kind="topup", key="stripe:cs_scale")
    assert scale.server.actives(deployed["digest"]) == [True]
    assert engine.guard.state(ws.id).state.value == "ok"  # type: ignore[union-attr]
    wait_until("the webhook queue to replay", lambda: engine.guard.hooks.queued_count(ws.id) == 0,
               RUNS_SECONDS)  # fmt: skip
    third = _wave(scale, deployed, 1) + _hook_runs(engine, "digest")
    assert len(third) == len(EXAMPLES) + QUEUE_MAX
    states = scale.wait_final(third, "a wave after the top-up")
    assert set(states.values()) == {"COMPLETED"}, scale.messages(third)
    _check_ledger(engine, ws.id)

    # 5. PostgreSQL restarts while a wave runs: ledger calls retry by key, nothing doubles.
    fourth = _wave(scale, deployed, 1)
    wait_until("the wave to be running",
               lambda: "RUNNING" in scale.states(fourth).values(), RUNS_SECONDS)  # fmt: skip
    cluster.restart()
    states = scale.wait_final(fourth, "a wave across a PostgreSQL restart")
    _check_ledger(engine, ws.id)
    assert "COMPLETED" in states.values(), scale.messages(fourth)

    # 6. A worker SIGKILLed inside a metered LLM node: the sweeper voids its hold.
    _crash_inside_a_hold(scale, engine, ws.id, deployed["slow"], tmp=scale.state)
    _check_ledger(engine, ws.id)  # the killed call's record committed with its base debit

    # 7. The scripts are idempotent: scale-up starts the killed worker again, nothing else.
    out = scale.script("scale-up.sh")
    assert out.count(": started") == 1 and "prefect-server: running" in out, out
    assert "automation 'Crash zombie flows': exists" in out

    # 8. scale-down stops every worker the way Prefect stops one; nothing needed a SIGKILL.
    began = time.monotonic()
    out = scale.script("scale-down.sh")
    print(f"scale-down.sh took {time.monotonic() - began:.1f} s")
    assert "killed" not in out and out.count(": stopped") == 4, out + scale.logs()
    logs = [(scale.state / f"worker-{i}.log").read_text(errors="replace") for i in (1, 2)]
    # The long-running worker took Prefect's own stop (the restarted one may still have been
    # starting, before Prefect's handlers: SIGTERM's default ends it as well).
    assert any("Received SIGTERM. Sending SIGINT to the process worker" in log for log in logs)


def _hook_runs(engine: Engine, hook: str) -> list[str]:
    with engine.sa_engine.connect() as conn:
        rows = conn.execute(text("SELECT flow_run_id FROM webhook_queue WHERE hook = :hook"
                                 " AND flow_run_id IS NOT NULL"), {"hook": hook})  # fmt: skip
        return [str(r[0]) for r in rows]


def _workers_used(scale: Scale, run_ids: list[str]) -> set[str]:
    """Names of the workers that ran these runs (from the workers' own logs)."""
    used = set()
    for i in (1, 2):
        log = (scale.state / f"worker-{i}.log").read_text(errors="replace")
        if any(r in log for r in run_ids):
            used.add(f"spojit-worker-{i}")
    return used


def _flood(hook_url: str, secret: str, count: int) -> list[int]:
    answers: list[int] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        request = urllib.request.Request(
            hook_url, data=json.dumps({"n": i}).encode(), method="POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        with lock:
            answers.append(status)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return sorted(answers)


def _crash_inside_a_hold(
    scale: Scale, engine: Engine, workspace_id: str, deployment_id: str, *, tmp: Path
) -> None:
    before = engine.balance(workspace_id)
    pid_file = tmp / "slow.pid"
    run_id = scale.submit(deployment_id, {"pid_file": str(pid_file), "seconds": 600})
    wait_until("the slow node to hold its LLM call", pid_file.exists, RUNS_SECONDS)
    held = _scalar(engine, "SELECT count(*) FROM holds WHERE workspace_id = :ws AND state = 'held'",
                   ws=workspace_id)  # fmt: skip
    assert held == 1 and engine.balance(workspace_id).held > 0
    flow_pid = int(pid_file.read_text())
    worker = next(f"worker-{i}" for i in (1, 2) if _descends(flow_pid, scale.pid(f"worker-{i}")))
    os.killpg(scale.pid(worker), signal.SIGKILL)  # the worker and the flow run it started
    with suppress(ProcessLookupError):
        os.kill(flow_pid, signal.SIGKILL)
    wait_until("the crashed worker to be gone", lambda: not _alive(scale.pid(worker)), 30)

    # Prefect's zombie automation marks the run Crashed once its heartbeats stop; the next
    # renewals pass releases its hold then, long before the hold's TTL.
    assert engine.balance(workspace_id).held > 0
    wait_until("Prefect to mark the run Crashed",
               lambda: scale.states([run_id])[run_id] == "CRASHED", ZOMBIE_SECONDS * 4)  # fmt: skip
    renew_due(engine.guard)  # (or the deployed spojit-renewals got there first)
    after = engine.balance(workspace_id)
    assert after.held == 0
    released = _scalar(engine, "SELECT count(*) FROM holds h JOIN usage_records u"
                       " ON u.key = h.node_call WHERE u.flow_run_id = :run"
                       " AND h.state = 'released'", run=run_id)  # fmt: skip
    assert released == 1
    # What the crashed run cost: the connector's base price, charged before it ran; its LLM
    # call, held but never settled, nothing.
    assert before.remaining - after.remaining == Decimal(1)
    runs = {r.flow_run_id: r.status for r in engine.executions(workspace_id, limit=100)}
    assert runs[run_id] == CRASHED


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
    return ") Z" not in stat


def _scalar(engine: Engine, sql: str, **params: Any) -> int:
    with engine.sa_engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def _pauses(engine: Engine, workspace_id: str) -> int:
    return _scalar(engine, "SELECT count(*) FROM guard_pauses WHERE workspace_id = :ws",
                   ws=workspace_id)  # fmt: skip


def _check_ledger(engine: Engine, workspace_id: str) -> None:
    """verify, and nothing spent twice: each node call's usage record equals the ledger entries
    bearing its key (its base debit and its settled LLM calls); every charged node call has its
    record (it commits with the call's first charge, so a call killed mid-way has one too);
    keys are unique."""
    assert engine.verify(workspace_id) == 1
    with engine.sa_engine.connect() as conn:
        mismatched = conn.execute(text(
            "SELECT u.key, u.credits_ucr, -coalesce(sum(e.amount_ucr), 0) FROM usage_records u"
            " LEFT JOIN entries e ON e.node_call = u.key AND e.kind IN ('debit', 'settle')"
            " WHERE u.workspace_id = :ws GROUP BY u.key, u.credits_ucr"
            " HAVING u.credits_ucr <> -coalesce(sum(e.amount_ucr), 0)"
        ), {"ws": workspace_id}).all()  # fmt: skip
        unrecorded = conn.execute(text(
            "SELECT count(DISTINCT e.node_call) FROM entries e LEFT JOIN usage_records u"
            " ON u.key = e.node_call WHERE e.workspace_id = :ws AND e.node_call IS NOT NULL"
            " AND u.key IS NULL"
        ), {"ws": workspace_id}).scalar()  # fmt: skip
        doubled = conn.execute(text(
            "SELECT count(*) FROM (SELECT key FROM entries GROUP BY key HAVING count(*) > 1) d"
        )).scalar()  # fmt: skip
    assert mismatched == []
    assert unrecorded == 0
    assert doubled == 0
