"""A run Prefect marked ``Crashed`` (its process died) gives back what it held at the next
``spojit-renewals`` pass, not at its hold's TTL, and its call reads ``crashed`` in Executions;
a run still running keeps its holds. Real Prefect (the session harness), both databases.
The end-to-end case (a worker killed, Prefect's zombie automation) is in test_scale_out.py."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from spojit_engine import Engine
from spojit_engine.clock import utcnow
from spojit_engine.guards.renewals import renew_due
from spojit_engine.guards.runs.crashed import CRASHED, release_crashed
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.store.usage import UsageRow, record_usage

TTL = timedelta(minutes=10)


def _flow_run(state: Any) -> str:
    """A flow run in Prefect, moved to ``state``."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    @flow(name="crash-probe")
    def probe() -> None:
        """Never run: only its flow runs' states matter here."""

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe, state=Running())
        if state is not None:
            client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def _call_with_open_hold(engine: Engine, workspace_id: str, flow_run_id: str) -> int:
    """A metered node call of that run inside its LLM call: its usage record and open hold."""
    call = f"node:{flow_run_id}:1:fetch:1"
    row = UsageRow(
        key=call, workspace_id=workspace_id, workflow="leads", flow_run_id=flow_run_id,
        task_run_id=None, attempt=1, node_name="fetch", node_type="connector.agent", mode=None,
        models=None, tokens_in=0, tokens_out=0, tokens_cached=0, llm_calls=0, credits_ucr=0,
        member_id=None, test_run=False, status="ok", error=None, created_at=utcnow(),
    )  # fmt: skip
    assert record_usage(engine.sa_engine, row)
    hold = engine.ledger.hold(workspace_id, amount_ucr=2_000_000, key=f"{call}:llm:1", ttl=TTL,
                              usage=Usage(workflow="leads", node_call=call))  # fmt: skip
    return hold.id


def test_a_crashed_runs_holds_are_released_at_the_next_pass(
    engine: Engine, prefect_harness: None
) -> None:
    from prefect.states import Crashed

    ws = engine.create_workspace("acme", plan="free")
    engine.grant(ws.id, 100, kind="topup", key="topup:acme")
    dead, alive = _flow_run(Crashed(message="worker gone")), _flow_run(None)
    dead_call = _call_with_open_hold(engine, ws.id, dead)
    alive_call = _call_with_open_hold(engine, ws.id, alive)
    engine.reserve_run(ws.id, 5, flow_run_id=dead, ttl=TTL)
    engine.reserve_run(ws.id, 5, flow_run_id=alive, ttl=TTL)
    assert engine.balance(ws.id).held == Decimal(14)

    report = renew_due(engine.guard)

    assert sorted(report.crashed_holds_released)[0] == dead_call
    assert len(report.crashed_holds_released) == 2  # its LLM call's hold and its reservation
    assert alive_call not in report.crashed_holds_released
    assert engine.balance(ws.id).held == Decimal(7)  # the running run's hold and reservation
    assert engine.verify(ws.id) == 1
    runs = {r.flow_run_id: r.status for r in engine.executions(ws.id)}
    assert runs == {dead: CRASHED, alive: "ok"}
    assert release_crashed(engine.ledger, 100) == []  # a second pass finds nothing to do


def test_nothing_changes_when_prefect_cannot_be_asked(engine: Engine) -> None:
    """No Prefect API configured: the holds stay for the TTL and the sweeper, no error."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ws = engine.create_workspace("acme", plan="free")
    engine.grant(ws.id, 100, kind="topup", key="topup:acme")
    engine.reserve_run(ws.id, 5, flow_run_id="0b7c5a8e-0000-4000-8000-000000000001", ttl=TTL)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert release_crashed(engine.ledger, 100) == []
    assert engine.balance(ws.id).held == Decimal(5)
