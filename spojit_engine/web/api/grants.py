"""``/api/v1/grants`` (admins): credits without Stripe — a promotion, a correction — each grant
recording who made it and why, and the list of the workspace's credit blocks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spojit_engine.display import credits_exact
from spojit_engine.errors import InvalidInput
from spojit_engine.metering.store.schema import REASON_LENGTH_MAX
from spojit_engine.money import POSITIVE_CREDITS_PATTERN
from spojit_engine.results import Grant
from spojit_engine.web.api.openapi import (
    Credits,
    Line,
    error_responses,
    in_the_future,
    member_router,
)
from spojit_engine.web.auth import Admin, EngineDep

router = member_router()


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(
        pattern=POSITIVE_CREDITS_PATTERN, examples=["50"], description="Credits to add."
    )
    reason: Line = Field(max_length=REASON_LENGTH_MAX, description="Why; kept with the grant.")
    kind: Literal["promo", "adjustment"] = "promo"
    expires_at: datetime | None = Field(
        default=None,
        description="When the credits expire (ISO 8601 with a time zone), in the future.",
        json_schema_extra=in_the_future(),
    )


class GrantItem(BaseModel):
    id: int
    kind: str = Field(description="allowance, topup, promo or adjustment.")
    amount: Credits
    remaining: Credits
    priority: int = Field(description="Lower burns first.")
    effective_at: datetime
    expires_at: datetime | None
    granted_by: str | None = Field(description="A member id, operator, stripe or plan.")
    reason: str | None


class GrantCreated(BaseModel):
    grant: GrantItem
    remaining: Credits = Field(description="The workspace's remaining credits now.")
    resumed: list[str] = Field(description="Deployments the credit guard resumed.")
    resume_pending: bool = Field(description="A resume waits for Prefect (spojit serve retries).")


def _grant_item(g: Grant) -> GrantItem:
    return GrantItem(
        id=g.id,
        kind=g.kind,
        amount=credits_exact(g.amount),
        remaining=credits_exact(g.remaining),
        priority=g.priority,
        effective_at=g.effective_at,
        expires_at=g.expires_at,
        granted_by=g.granted_by,
        reason=g.reason,
    )


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantCreated,
    summary="Grant credits without Stripe (admins); says what the guard resumed",
    responses=error_responses(400, 403, 413),
)
def create_grant(body: GrantRequest, admin: Admin, engine: EngineDep) -> GrantCreated:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone, e.g. 2027-01-31T00:00:00Z.")
    reason = " ".join(body.reason.split())  # the Engine checks what is left (text.py)
    with engine.watch_resumes() as watch:
        granted = engine.grant(
            admin.workspace_id,
            body.amount,
            kind=body.kind,
            key=f"api-grant:{uuid.uuid4().hex}",
            expires_at=body.expires_at,
            reason=reason,
            by=admin.id,
        )
    return GrantCreated(
        grant=_grant_item(granted),
        remaining=credits_exact(engine.balance(admin.workspace_id).remaining),
        resumed=watch.resumed,
        resume_pending=watch.pending,
    )


@router.get(
    "/grants",
    response_model=list[GrantItem],
    summary="The workspace's credit blocks, oldest first (admins)",
    responses=error_responses(403),
)
def list_grants(admin: Admin, engine: EngineDep) -> list[GrantItem]:
    return [_grant_item(g) for g in engine.grants(admin.workspace_id)]
