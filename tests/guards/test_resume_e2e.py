"""End to end, nothing faked: a webhook-triggered run on a real ``prefect server start`` (on a
fresh PostgreSQL database) and a process worker is refused at its third paid node, ends
``OutOfCredits`` and is kept as incomplete; a top-up lands and the run resumes — exactly once,
from the refused node: the ledger bills each node once. The servers and waits are those of
``test_guard_e2e.py``."""

from __future__ import annotations

import json
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from e2e_support import BIN, Processes, Server, prefect_stack, wait_until
from test_guard_e2e import PHASE_SECONDS, SERVER_START_SECONDS
from test_resume import billed_per_node

from spojit_engine import Engine
from spojit_engine.guards.runs.incomplete import RunStatus
from spojit_engine.metering.meter.run_context import RESUME_TAG

pytestmark = pytest.mark.e2e

FLOWS = Path(__file__).with_name("resume_flows.py")
UCR = 1_000_000
TRIGGER_UCR = 10_000  # the trigger node: 0.01
QUIET_SECONDS = 15  # several worker polls: long enough to see a second resume if there were one


def test_a_webhook_run_refused_mid_way_resumes_exactly_once_after_a_top_up(
    tmp_path: Path,
) -> None:
    with prefect_stack(tmp_path) as (engine, server, env, procs):
        _scenario(engine, server, env, procs)


def _runs_tagged(server: Server, tag: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with server.client() as client:
        return list(
            client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))
        )


def _state(server: Server, flow_run_id: str) -> Any:
    from uuid import UUID

    with server.client() as client:
        return client.read_flow_run(UUID(flow_run_id)).state


def _scenario(engine: Engine, server: Server, env: dict[str, str], procs: Processes) -> None:
    procs.start("server", [str(BIN / "prefect"), "server", "start"], env)
    wait_until("the Prefect server", server.healthy, SERVER_START_SECONDS, procs)
    ws = engine.create_workspace("e2e", plan="free")
    # The trigger and two of the four paid nodes fit; the third is refused.
    engine.debit(ws.id, engine.balance(ws.id).remaining - Decimal("2.51"), key="leave-2.51")
    deployed = subprocess.run(
        [str(BIN / "spojit"), "deploy", str(FLOWS), "--name", "hooked", "--webhook",
         "--workspace", "e2e", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    secret = json.loads(deployed.stdout)["webhook_secret"]
    procs.start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", "spojit"], env)

    hooks = engine.guard.hooks
    receipt = hooks.receive(hooks.authenticate("hooked", secret), b'{"lead": 7}')
    assert receipt.status == "started" and receipt.flow_run_id is not None
    original = receipt.flow_run_id

    def kept() -> bool:
        runs = engine.incomplete_runs(ws.id)
        return bool(runs) and _state(server, original).is_final()

    wait_until("the run to stop for credits", kept, PHASE_SECONDS, procs)
    (run,) = engine.incomplete_runs(ws.id)
    assert (run.flow_run_id, run.trigger, run.refused_node) == (original, "webhook", "n3")
    assert run.parameters["payload"] == {"lead": 7}
    state = _state(server, original)
    assert (state.type.value, state.name) == ("CANCELLED", "OutOfCredits")
    assert billed_per_node(engine, ws.id) == {"webhook": TRIGGER_UCR, "n1": UCR, "n2": UCR}

    # The top-up lands (here, in this process): the run resumes by itself, once.
    engine.grant(ws.id, Decimal(10), kind="topup", key="stripe:cs_e2e_resume")
    engine.grant(ws.id, Decimal(1), kind="promo", key="promo:e2e-second-signal")

    def resumed_completed() -> bool:
        runs = _runs_tagged(server, RESUME_TAG + original)
        return len(runs) == 1 and runs[0].state is not None and runs[0].state.is_completed()

    wait_until("the resumed run to complete", resumed_completed, PHASE_SECONDS, procs)
    time.sleep(QUIET_SECONDS)
    (resumed,) = _runs_tagged(server, RESUME_TAG + original)
    assert resumed.parameters["payload"] == {"lead": 7}
    (done,) = engine.incomplete_runs(ws.id, include_done=True)
    assert (done.status, done.attempts) == (RunStatus.RESUMED, 1)
    assert done.resumed_flow_run_id == str(resumed.id)
    assert billed_per_node(engine, ws.id) == {
        "webhook": TRIGGER_UCR, "n1": UCR, "n2": UCR, "n3": UCR, "n4": UCR,
    }  # fmt: skip
    assert engine.balance(ws.id).remaining == Decimal("9.5")  # 0.50 left + 11 - n3 - n4
    assert engine.verify(ws.id) == 1
