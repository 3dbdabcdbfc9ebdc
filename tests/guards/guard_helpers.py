"""What the guard tests need from Prefect (the session's test server, through its real client):
deployments with schedules, scheduled runs made the way the scheduler makes them, the runs and
events that exist; and small paid workflows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from spojit_engine import Connector, Engine, Workflow
from spojit_engine.guards import prefect_api
from spojit_engine.metering.meter.run_context import WORKSPACE_TAG

EVENT_WAIT_SECONDS = 60  # the test server persists events in batches, every few seconds


def hooks_client(engine: Engine) -> Any:
    """The web app (with ``POST /hooks/{name}``) under FastAPI's TestClient."""
    from fastapi.testclient import TestClient

    from spojit_engine.web.app import create_app

    return TestClient(create_app(engine))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fetch(value: Any) -> dict[str, Any]:
    return {"fetched": value}


def paid_workflow(name: str) -> Workflow:
    """One Direct Connector: 1.00 credit a run, no LLM."""
    return Workflow(name, [Connector("fetch", fetch, mode="direct")])


@contextmanager
def prefect() -> Iterator[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client


def interval(seconds: int) -> Any:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    return DeploymentScheduleCreate(
        schedule=IntervalSchedule(interval=timedelta(seconds=seconds)), active=True
    )


def cron(expression: str) -> Any:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    return DeploymentScheduleCreate(
        schedule=CronSchedule(cron=expression, timezone="UTC"), active=True
    )


def deploy(
    engine: Engine, workflow: Workflow, name: str, workspace_id: str, schedules: list[Any]
) -> str:
    """A deployment of ``workflow`` billed to the workspace, bound like ``spojit deploy`` does."""
    with prefect() as client:
        deployment_id = str(
            client.create_deployment(
                flow_id=client.create_flow_from_name(workflow.name),
                name=name,
                entrypoint="tests/guards/flows.py:workflow.flow",
                schedules=schedules,
                tags=[WORKSPACE_TAG + workspace_id],
            )
        )
    engine.guard.bind(deployment_id, workspace_id=workspace_id, workflow=workflow.name, name=name)
    return deployment_id


def schedule_runs(deployment_id: str, *, since: datetime | None = None) -> None:
    """What Prefect's scheduler does for active schedules (the test server runs no scheduler);
    ``since`` in the past makes late runs too (a backfill)."""
    body = {} if since is None else {"start_time": since.isoformat(), "min_runs": 5}
    with prefect() as client:
        response = client.request("POST", f"/deployments/{deployment_id}/schedule", json=body)
        response.raise_for_status()


def scheduled_runs(deployment_id: str) -> list[Any]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with prefect() as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[UUID(deployment_id)])
                ),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
            )
        )


def runs_tagged(tag: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect() as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            )
        )


def read(deployment_id: str) -> prefect_api.DeploymentInfo:
    with prefect() as client:
        found = prefect_api.read_deployment(client, deployment_id)
    assert found is not None
    return found


def actives(deployment_id: str) -> list[bool]:
    return [s.active for s in read(deployment_id).schedules]


def set_schedule(deployment_id: str, index: int, *, active: bool) -> None:
    """A person switching one schedule on or off in the UI."""
    info = read(deployment_id)
    with prefect() as client:
        client.update_deployment_schedule(
            UUID(deployment_id), UUID(info.schedules[index].id), active=active
        )


def pause_by_hand(deployment_id: str) -> None:
    with prefect() as client:
        client.pause_deployment(deployment_id)


def flow_run(run_id: str) -> Any:
    with prefect() as client:
        return client.read_flow_run(UUID(run_id))


@dataclass(frozen=True)
class Seen:
    event: str
    payload: dict[str, Any]


def wait_for_events(workspace_id: str, names: list[str]) -> list[Seen]:
    """Events about the workspace, once every name in ``names`` is among them (bounded wait)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    found: list[Seen] = []
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    while time.monotonic() < deadline:
        with prefect() as client:
            page = client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(prefix=["spojit.credits."]),
                    resource=EventResourceFilter(id=[f"spojit.workspace.{workspace_id}"]),
                ),
                limit=50,
            )
        found = [Seen(e.event, dict(e.payload)) for e in page.events]
        if all(any(s.event == name for s in found) for name in names):
            return found
        time.sleep(0.5)
    return found
