"""Prefect deployments of workflows, bound to a workspace (``spojit deploy``), and the
``spojit-renewals`` deployment that renews due workspaces on a schedule.

A workflow deployment runs on a process work pool (created if missing): its entrypoint is the
workflow's file (or module) and ``workflow.flow``, its working directory set by a pull step, its
tags ``spojit:workspace=ID`` (so every run of it, scheduled or not, bills that workspace) and
``spojit:reserve=p95|max`` when its runs reserve their estimate, its parameter ``payload`` (a
test deployment also sets ``test``, ``sample`` and ``max_credits``). Deploying again updates it
in place (same flow and name).
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from spojit_engine.errors import InvalidInput
from spojit_engine.guards import prefect_api
from spojit_engine.guards.deployments.webhooks import HOOK_NAME
from spojit_engine.metering.meter.run_context import RESERVE_TAG, WORKSPACE_TAG

if TYPE_CHECKING:
    from spojit_engine.guards.guard import Guard

RENEWALS_NAME = "spojit-renewals"  # its flow's name and its deployment's name
RENEWALS_ENTRYPOINT = "spojit_engine.guards.renewals:renewals_flow"
RENEWALS_TAG = "spojit:renewals"
PAYLOAD_SCHEMA: dict[str, Any] = {
    "title": "Parameters",
    "type": "object",
    "properties": {"payload": {"title": "payload", "default": None, "position": 0}},
}
INTERVAL_SECONDS_MIN = 1


@dataclass(frozen=True, slots=True)
class DeployRequest:
    workflow: str  # the workflow's (and its Prefect flow's) name
    entrypoint: str  # "/abs/path/flow.py:workflow.flow" or "package.module:workflow.flow"
    directory: str  # the worker's working directory for its runs
    name: str  # the deployment's name, and its webhook's
    workspace_id: str
    cron: str | None = None
    interval_seconds: int | None = None
    webhook: bool = False
    description: str | None = None
    parameters: dict[str, Any] | None = None  # defaults of its runs (a test deployment's scope)
    reserve: str | None = None  # "p95" | "max": its runs hold that estimate at start


@dataclass(frozen=True, slots=True)
class Deployed:
    deployment_id: str
    name: str
    workflow: str
    workspace_id: str
    schedule: str | None
    pool: str
    webhook_path: str | None  # "/hooks/{name}"
    webhook_secret: str | None  # shown once
    renewals_deployment_id: str


def _schedules(request: DeployRequest) -> list[Any]:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    if request.cron and request.interval_seconds:
        raise InvalidInput("Give --cron or --interval, not both.")
    if request.interval_seconds is not None:
        if request.interval_seconds < INTERVAL_SECONDS_MIN:
            raise InvalidInput(f"--interval must be at least {INTERVAL_SECONDS_MIN} second.")
        schedule: Any = IntervalSchedule(interval=timedelta(seconds=request.interval_seconds))
        return [DeploymentScheduleCreate(schedule=schedule, active=True)]
    if request.cron:
        try:
            schedule = CronSchedule(cron=request.cron, timezone="UTC")
        except ValueError as exc:
            raise InvalidInput(f"--cron {request.cron!r} is not a cron expression.") from exc
        return [DeploymentScheduleCreate(schedule=schedule, active=True)]
    return []


def ensure_work_pool(prefect: Any, pool: str) -> None:
    """A process work pool named ``pool`` (``prefect worker start --pool POOL`` serves it)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        prefect.read_work_pool(pool)
        return
    except ObjectNotFound:
        pass
    with suppress(ObjectAlreadyExists):  # created meanwhile
        prefect.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )


def _pull_steps(directory: str) -> list[dict[str, Any]]:
    return [{"prefect.deployments.steps.set_working_directory": {"directory": directory}}]


def deploy_workflow(guard: Guard, request: DeployRequest) -> Deployed:
    """Create or update the deployment, bind it to the workspace, and (``webhook``) give it a
    webhook with a fresh secret. Also makes sure ``spojit-renewals`` is deployed."""
    if not HOOK_NAME.match(request.name):
        raise InvalidInput(
            f"Deployment name {request.name!r} must be 1-128 letters, digits, '.', '_' or '-'."
        )
    schedules = _schedules(request)
    if request.webhook:
        guard.hooks.check_free(request.name, request.workspace_id)
    pool = guard.settings.work_pool
    with prefect_api.client() as prefect:
        ensure_work_pool(prefect, pool)
        deployment_id = _create_deployment(prefect, request, pool, schedules)
        renewals_id = ensure_renewals_deployment(prefect, pool, guard.settings)
        info = prefect_api.read_deployment(prefect, deployment_id)
    guard.bind(
        deployment_id,
        workspace_id=request.workspace_id,
        workflow=request.workflow,
        name=request.name,
    )
    secret = None
    if request.webhook:
        secret = guard.hooks.create(
            request.name,
            workflow=request.workflow,
            workspace_id=request.workspace_id,
            deployment_id=deployment_id,
        )
    texts = [s.text for s in info.schedules] if info else []
    return Deployed(
        deployment_id,
        request.name,
        request.workflow,
        request.workspace_id,
        ", ".join(texts) or None,
        pool,
        f"/hooks/{request.name}" if request.webhook else None,
        secret,
        renewals_id,
    )


def _create_deployment(
    prefect: Any, request: DeployRequest, pool: str, schedules: list[Any]
) -> str:
    """Create (or update in place: same flow and name) the workflow's deployment; its id."""
    flow_id = prefect.create_flow_from_name(request.workflow)
    return str(
        prefect.create_deployment(
            flow_id=flow_id,
            name=request.name,
            entrypoint=request.entrypoint,
            path=request.directory,
            pull_steps=_pull_steps(request.directory),
            work_pool_name=pool,
            schedules=schedules,
            tags=[WORKSPACE_TAG + request.workspace_id]
            + ([RESERVE_TAG + request.reserve] if request.reserve else []),
            parameters=request.parameters or {},
            parameter_openapi_schema=PAYLOAD_SCHEMA,
            enforce_parameter_schema=False,
            description=request.description,
        )
    )


def ensure_renewals_deployment(prefect: Any, pool: str, settings: Any) -> str:
    """``spojit-renewals`` on ``pool``, every ``SPOJIT_RENEWALS_INTERVAL_SECONDS``: renews due
    workspaces, so paused work resumes at the reset without waiting for traffic."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    flow_id = prefect.create_flow_from_name(RENEWALS_NAME)
    every = IntervalSchedule(interval=timedelta(seconds=settings.renewals_interval_seconds))
    return str(
        prefect.create_deployment(
            flow_id=flow_id,
            name=RENEWALS_NAME,
            entrypoint=RENEWALS_ENTRYPOINT,
            path=os.getcwd(),
            pull_steps=_pull_steps(os.getcwd()),
            work_pool_name=pool,
            schedules=[DeploymentScheduleCreate(schedule=every, active=True)],
            tags=[RENEWALS_TAG],
            parameter_openapi_schema={"type": "object", "properties": {}},
            description="Renews due spojit workspaces; resumes what the credit guard paused.",
        )
    )
