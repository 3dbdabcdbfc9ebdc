"""``POST /webhooks/stripe``: Stripe's events, verified on the raw body (never re-serialised JSON)
with ``SPOJIT_STRIPE_WEBHOOK_SECRET``. No member token: the signature is the credential.

Answers 200 for every verified event, handled or not (so Stripe stops retrying), with what it did;
400 for a bad signature or body, 409 when an event contradicts an order's state (Stripe retries,
and the dashboard shows it), 503 when no secret is configured.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spojit_engine.web.api.openapi import CLIENT_ERRORS, error_responses
from spojit_engine.web.auth import EngineDep

router = APIRouter(tags=["stripe"])


class WebhookReceived(BaseModel):
    received: bool = True
    event_id: str
    type: str
    outcome: str = Field(
        description="granted, already_granted, awaiting_payment, failed, expired, clawed_back, "
        "restored, unchanged, stored (applied when its order is paid), ignored or duplicate."
    )
    order_id: str | None


_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A Stripe event exactly as Stripe sent it (the signature covers the bytes).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post(
    "/webhooks/stripe",
    response_model=WebhookReceived,
    summary="Stripe webhook (signed by Stripe)",
    responses={**CLIENT_ERRORS, **error_responses(400, 409, 413, 503)},
    openapi_extra=_EVENT_BODY,
)
async def stripe_webhook(
    request: Request,
    engine: EngineDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookReceived:
    payload = await request.body()
    result = await run_in_threadpool(engine.handle_stripe_webhook, payload, stripe_signature)
    return WebhookReceived(
        event_id=result.event_id,
        type=result.type,
        outcome=result.outcome,
        order_id=result.order_id,
    )
