"""``GET /api/v1/deployments``: the workspace's deployments as ``spojit deployments`` shows them —
schedules, and whether each is active, paused by the guard (and why), resume pending, or paused by
a person — with its webhook queue."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spojit_engine.web.api.openapi import member_router
from spojit_engine.web.auth import EngineDep, Member

router = member_router()


class DeploymentItem(BaseModel):
    deployment_id: str
    name: str
    workflow: str
    schedules: list[str] = Field(examples=[["every 30s (off)"]])
    status: str = Field(
        description="active, paused by the guard, resume pending, paused by a person, "
        "no schedule, deleted in Prefect, or unknown (Prefect did not answer)."
    )
    reason: str | None = Field(description="Why the guard paused it, or what is pending.")
    webhook: str | None = Field(description="Its webhook's name: POST /hooks/{webhook}.")
    queued: int = Field(description="Webhook requests waiting to start.")
    dead_letters: int = Field(
        description="Webhook requests that will not start (Prefect refused them); kept and "
        "logged for the operator, they hold nothing up."
    )
    dead_letter_reason: str | None = Field(description="Why the latest one failed.")


@router.get(
    "/deployments", response_model=list[DeploymentItem], summary="Deployments and the guard"
)
async def deployments(member: Member, engine: EngineDep) -> list[DeploymentItem]:
    rows = await run_in_threadpool(engine.deployments, member.workspace_id)
    return [DeploymentItem(**{f: getattr(r, f) for f in DeploymentItem.model_fields}) for r in rows]
