"""A real Prefect run's usage records carry its Prefect run name and trigger, so Executions lists
runs by name (not by the first characters of a UUID) and says what started each."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from node_billing import Billed, billed_workspace

from spojit_engine import Engine
from spojit_engine.nodes import Transform, Trigger, Workflow


@pytest.fixture
def acme(sqlite_engine: Engine, prefect_harness: None) -> Iterator[Billed]:
    with billed_workspace(sqlite_engine) as billed:
        yield billed


def _prefect_name(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(UUID(flow_run_id)).name)


def test_runs_carry_prefect_s_name_and_their_trigger(acme: Billed) -> None:
    workflow = Workflow("greeter", [Trigger(), Transform("upper", str.upper)])
    acme.run(workflow, "hello")
    live = acme.last_flow_run_id()
    acme.run(workflow, "hello", test=True)
    test = acme.last_flow_run_id()

    newest, oldest = acme.engine.executions(acme.workspace_id)
    assert (newest.flow_run_id, oldest.flow_run_id) == (test, live)
    assert (newest.trigger, oldest.trigger) == ("test", "manual")  # called directly: manual
    assert newest.run_name == _prefect_name(test) and oldest.run_name == _prefect_name(live)
    assert {r.run_name for r in acme.usage(live)} == {oldest.run_name}

    detail = acme.engine.execution(acme.workspace_id, live)
    assert [n.name for n in detail.nodes] == ["trigger", "upper"]
    assert sum(n.credits for n in detail.nodes) == detail.run.credits == oldest.credits
