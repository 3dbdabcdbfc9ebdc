"""Runs stopped for credits are kept and resume from the refused node (issue 9, item 5): the
nodes that had completed are neither run nor billed again; each resume is claimed once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from guard_helpers import deploy, paid_workflow, prefect, unique
from sqlalchemy import select

from spojit_engine import Connector, Engine, Workflow
from spojit_engine.errors import Conflict, IllegalTransition, InsufficientCredits
from spojit_engine.guards.policy import REFUSED_STATE_NAME
from spojit_engine.guards.runs import incomplete
from spojit_engine.guards.runs.incomplete import Refusal, RunStatus, transition
from spojit_engine.metering.meter.run_context import RESUME_TAG, WORKSPACE_TAG
from spojit_engine.metering.store import schema

UCR = 1_000_000


def four_nodes(name: str, calls: Counter[str]) -> Workflow:
    """Four Direct Connectors, 1.00 credit each, counting how often each tool really ran."""

    def step(label: str) -> Any:
        def tool(value: Any) -> Any:
            calls[label] += 1
            return {**(value or {}), label: True}

        tool.__name__ = label
        return Connector(label, tool, mode="direct")

    return Workflow(name, [step("n1"), step("n2"), step("n3"), step("n4")])


def leave_only(engine: Engine, workspace_id: str, credits: str) -> None:
    """Spend the workspace down to ``credits``."""
    left = Decimal(credits)
    engine.debit(workspace_id, engine.balance(workspace_id).remaining - left, key=f"leave-{left}")


def refused_run(engine: Engine, name: str, calls: Counter[str]) -> tuple[Workflow, Any]:
    """Run four 1.00-credit nodes until workspace acme refuses one: the workflow, the kept run."""
    workflow = four_nodes(unique(name), calls)
    with pytest.raises(InsufficientCredits):
        workflow.run(None, workspace="acme")
    (kept,) = engine.incomplete_runs(engine.workspace_id("acme"))
    return workflow, kept


def short_workspace(engine: Engine, credits: str) -> str:
    """Workspace acme (free plan) with only ``credits`` left; its id."""
    ws = engine.create_workspace("acme", plan="free")
    leave_only(engine, ws.id, credits)
    return str(ws.id)


def billed_per_node(engine: Engine, workspace_id: str) -> dict[str, int]:
    """µcr debited per node, read from the ledger's entries (their keys name the node)."""
    e = schema.entries.c
    with engine.sa_engine.connect() as conn:
        rows = conn.execute(
            select(e.key, e.amount_ucr).where(e.workspace_id == workspace_id, e.key.like("node:%"))
        ).all()
    totals: Counter[str] = Counter()
    for key, amount in rows:
        totals[key.split(":")[3]] -= amount
    return dict(totals)


def flow_state(flow_run_id: str) -> Any:
    from uuid import UUID

    with prefect() as client:
        return client.read_flow_run(UUID(flow_run_id)).state


def test_a_run_refused_at_node_3_resumes_there_after_a_top_up_billing_each_node_once(
    bound_on_each_db: Engine, tmp_path: Path
) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace("acme", plan="free")
    leave_only(engine, ws.id, "2.5")
    calls: Counter[str] = Counter()
    workflow = four_nodes(unique("four"), calls)

    with pytest.raises(InsufficientCredits):
        workflow.run({"lead": 1}, workspace="acme")

    (kept,) = engine.incomplete_runs(ws.id)
    assert (kept.status, kept.refused_node, kept.trigger) == (RunStatus.INCOMPLETE, "n3", "manual")
    assert kept.parameters["payload"] == {"lead": 1}
    state = flow_state(kept.flow_run_id)
    assert (state.type.value, state.name) == ("CANCELLED", "OutOfCredits")
    assert state.message.startswith("Out of credits: workspace acme needs 1.00 credits")
    assert "Traceback" not in state.message
    assert calls == Counter(n1=1, n2=1)
    assert billed_per_node(engine, ws.id) == {"n1": UCR, "n2": UCR}
    assert [(e.flow_run_id, e.status) for e in engine.executions(ws.id)] == [
        (kept.flow_run_id, "incomplete")
    ]

    engine.grant(ws.id, Decimal(10), kind="topup", key="stripe:cs_resume")
    assert engine.incomplete_runs(ws.id)[0].status is RunStatus.INCOMPLETE  # manual: on request
    assert engine.incomplete_runs(ws.id)[0].resumes == "on request"

    started = engine.resume_run(ws.id, kept.flow_run_id, workflow=workflow)

    assert started.state == "Completed" and started.attempt == 1
    assert started.flow_run_id not in (None, kept.flow_run_id)
    assert calls == Counter(n1=1, n2=1, n3=1, n4=1)  # nodes 1-2 were read from their results
    assert billed_per_node(engine, ws.id) == {"n1": UCR, "n2": UCR, "n3": UCR, "n4": UCR}
    assert engine.balance(ws.id).remaining == Decimal("8.5")
    (done,) = engine.incomplete_runs(ws.id, include_done=True)
    assert (done.status, done.resumed_flow_run_id) == (RunStatus.RESUMED, started.flow_run_id)
    assert done.resumes == f"resumed as {started.flow_run_id} (attempt 1)"  # not "on request"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": engine.database_url,
            "COLUMNS": "300"}  # fmt: skip
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("spojit")), "executions", "incomplete", "--all",
         "-w", "acme"], env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert f"resumed as {started.flow_run_id}" in listed and "on request" not in listed
    assert engine.incomplete_runs(ws.id) == []
    assert {(e.flow_run_id, e.status) for e in engine.executions(ws.id)} == {
        (kept.flow_run_id, "resumed"), (started.flow_run_id, "ok"),
    }  # fmt: skip
    with pytest.raises(Conflict, match="resumed"):
        engine.resume_run(ws.id, kept.flow_run_id, workflow=workflow)
    assert engine.verify(ws.id) == 1


def kept_result_files() -> set[str]:
    """Node results written to Prefect's local result storage (``kept_results.py``)."""
    from pathlib import Path

    from prefect.settings import get_current_settings

    storage = Path(get_current_settings().results.local_storage_path).expanduser()
    return {p.name for p in storage.glob("spojit-node-*")} if storage.exists() else set()


def test_only_a_refused_run_writes_its_completed_nodes_results(bound: Engine) -> None:
    engine = bound
    ws = engine.create_workspace("acme", plan="free")
    calls: Counter[str] = Counter()
    before = kept_result_files()
    four_nodes(unique("paid"), calls).run(None, workspace="acme")
    assert calls == Counter(n1=1, n2=1, n3=1, n4=1)
    assert kept_result_files() == before  # a run that completes writes none: no cost per node

    leave_only(engine, ws.id, "2.5")
    refused_run(engine, "short", calls)
    assert len(kept_result_files() - before) == 2  # n1 and n2, for the resume


def test_a_resume_still_skips_completed_nodes_when_the_kept_buffer_overflows(
    bound: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spojit_engine.nodes import kept_results

    monkeypatch.setattr(kept_results, "KEPT_MAX", 1)  # n1 is written out when n2 completes
    engine, calls = bound, Counter[str]()
    ws_id = short_workspace(engine, "3.5")
    workflow, kept = refused_run(engine, "overflow", calls)
    assert kept.refused_node == "n4"
    engine.grant(ws_id, Decimal(2), kind="topup", key="stripe:cs_overflow")
    assert engine.resume_run(ws_id, kept.flow_run_id, workflow=workflow).state == "Completed"
    assert calls == Counter(n1=1, n2=1, n3=1, n4=1)
    assert billed_per_node(engine, ws_id) == {"n1": UCR, "n2": UCR, "n3": UCR, "n4": UCR}


def test_a_resume_refused_again_is_kept_again_under_the_original_run(bound: Engine) -> None:
    engine, calls = bound, Counter[str]()
    ws_id = short_workspace(engine, "1.5")
    workflow, kept = refused_run(engine, "again", calls)
    assert kept.refused_node == "n2"
    # Resumed too early: refused at its start, and still kept to resume.
    assert engine.resume_run(ws_id, kept.flow_run_id, workflow=workflow).state == REFUSED_STATE_NAME
    (early,) = engine.incomplete_runs(ws_id)
    assert (early.flow_run_id, early.status, early.attempts) == (
        kept.flow_run_id,
        RunStatus.INCOMPLETE,
        1,
    )

    engine.grant(ws_id, Decimal("1.2"), kind="topup", key="stripe:cs_small")  # n2 only
    assert engine.resume_run(ws_id, kept.flow_run_id, workflow=workflow).state == "OutOfCredits"

    (again,) = engine.incomplete_runs(ws_id)
    assert (again.flow_run_id, again.refused_node, again.attempts) == (kept.flow_run_id, "n3", 2)
    assert again.last_flow_run_id != kept.flow_run_id
    engine.grant(ws_id, Decimal(5), kind="topup", key="stripe:cs_more")
    assert engine.resume_run(ws_id, kept.flow_run_id, workflow=workflow).state == "Completed"
    assert calls == Counter(n1=1, n2=1, n3=1, n4=1)
    assert billed_per_node(engine, ws_id) == {"n1": UCR, "n2": UCR, "n3": UCR, "n4": UCR}


def test_webhook_and_schedule_runs_resume_by_themselves_once_when_credits_return(
    bound_on_each_db: Engine,
) -> None:
    engine = bound_on_each_db
    ws = engine.create_workspace("acme", plan="free")
    workflow = paid_workflow(unique("hooked"))
    deployment_id = deploy(engine, workflow, unique("dep"), ws.id, [])
    original = str(uuid.uuid4())
    incomplete.record(
        engine.sa_engine,
        Refusal(
            flow_run_id=original, workspace_id=ws.id, workflow=workflow.name,
            deployment_id=deployment_id, trigger="webhook", parameters={"payload": {"a": 1}},
            tags=[WORKSPACE_TAG + ws.id, "spojit:trigger=webhook", "spojit:hook-request=7"],
            refused_node="fetch", reason="Out of credits.", needed_ucr=UCR,
        ),
        engine.ledger.clock(),
    )  # fmt: skip

    # Four processes told at once that credits returned: one resume, one new run.
    threads = [
        threading.Thread(target=engine.guard.resumer.on_credits_added, args=(ws.id,))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.grant(ws.id, Decimal(1), kind="topup", key="stripe:cs_hook")  # and a real grant

    (done,) = engine.incomplete_runs(ws.id, include_done=True)
    assert (done.status, done.attempts) == (RunStatus.RESUMED, 1)
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with prefect() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[RESUME_TAG + original]))
        )
    (run,) = runs
    assert str(run.id) == done.resumed_flow_run_id
    assert run.parameters == {"payload": {"a": 1}}
    assert "spojit:trigger=webhook" in run.tags and "spojit:hook-request=7" not in run.tags


def test_a_claim_that_could_not_start_goes_back_and_an_abandoned_run_never_resumes(
    bound: Engine,
) -> None:
    engine, calls = bound, Counter[str]()
    ws_id = short_workspace(engine, "1.5")
    workflow, kept = refused_run(engine, "given-up", calls)
    now = engine.ledger.clock()

    claimed = incomplete.claim(engine.sa_engine, kept, now)
    assert claimed is not None and claimed.status is RunStatus.RESUMING
    incomplete.unclaim(engine.sa_engine, claimed, now)  # Prefect did not answer
    back = incomplete.get(engine.sa_engine, kept.flow_run_id)
    assert (back.status, back.attempts) == (RunStatus.INCOMPLETE, claimed.attempts)

    done = engine.abandon_run(ws_id, kept.flow_run_id)
    assert done.status is RunStatus.ABANDONED
    incomplete.unclaim(engine.sa_engine, claimed, now)  # a stale claim cannot bring it back
    assert incomplete.get(engine.sa_engine, kept.flow_run_id).status is RunStatus.ABANDONED
    with pytest.raises(IllegalTransition):
        engine.abandon_run(ws_id, kept.flow_run_id)
    with pytest.raises((Conflict, IllegalTransition)):
        engine.resume_run(ws_id, kept.flow_run_id, workflow=workflow)
    assert engine.incomplete_runs(ws_id) == [] and calls == Counter(n1=1)


def test_the_incomplete_run_status_machine() -> None:
    assert transition(RunStatus.INCOMPLETE, RunStatus.RESUMING) is RunStatus.RESUMING
    assert transition(RunStatus.RESUMED, RunStatus.INCOMPLETE) is RunStatus.INCOMPLETE
    with pytest.raises(IllegalTransition, match="from abandoned to resuming"):
        transition(RunStatus.ABANDONED, RunStatus.RESUMING)
    with pytest.raises(IllegalTransition):
        transition(RunStatus.RESUMED, RunStatus.RESUMING)
