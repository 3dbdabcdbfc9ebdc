"""End to end, nothing faked: a real ``prefect server start`` on a fresh PostgreSQL database, a
process worker, the ledger on PostgreSQL, ``spojit deploy`` as a person types it. Prefect's own
scheduler runs a deployment every few seconds until the workspace's credits run out; the guard
stops it; nothing more is scheduled; a top-up lands and the scheduler runs it again, until the
top-up is spent too. The ``spojit-renewals`` deployment runs on the same worker.

Bounded: every wait has a deadline, and every process is stopped at the end. Loopback only."""

from __future__ import annotations

import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from e2e_support import BIN, Processes, Server, prefect_stack, wait_until

from spojit_engine import Engine
from spojit_engine.guards.deployments.deploy import RENEWALS_NAME

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

FLOWS = Path(__file__).with_name("flows.py")
RUN_COST = Decimal("1.01")  # flows.py: a trigger (0.01) and a direct connector (1.00)
INTERVAL_SECONDS = 4
SERVER_START_SECONDS = 240  # a fresh PostgreSQL database is migrated first
PHASE_SECONDS = 300  # runs are processes of their own: a few seconds each on a busy machine
QUIET_SECONDS = 20  # several scheduler loops and intervals: long enough to see nothing happen


def test_the_scheduler_runs_until_credits_run_out_then_stops_and_resumes_after_a_top_up(
    tmp_path: Path,
) -> None:
    with prefect_stack(tmp_path) as (engine, server, env, procs):
        _scenario(engine, server, env, procs)


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
