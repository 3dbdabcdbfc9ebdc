"""``POST /hooks/{name}``: a workflow webhook. The JSON body becomes the run's ``payload``.

Authenticated by the hook's own secret (``Authorization: Bearer <secret>`` or
``X-Spojit-Secret: <secret>``), never by a member token. Answers 202 with
``{"status": "started", "flow_run_id"}`` or, while the workspace is out of credits,
``{"status": "queued", "position", "reason"}``, or ``{"status": "failed", "reason"}`` when
Prefect refused to start it (a dead letter); 402 when the queue is full. Bad input is refused
before anything is queued or charged: 413 too large (``BodyLimit``), 401 unknown hook or wrong
secret, 400 malformed JSON, or JSON holding a NUL or a lone surrogate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from spojit_engine.engine import Engine
from spojit_engine.guards.deployments.webhooks import Receipt
from spojit_engine.web.api.openapi import CLIENT_ERRORS, error_responses
from spojit_engine.web.auth import engine_of

router = APIRouter()


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-spojit-secret") or None


def _receive(engine: Engine, name: str, secret: str | None, body: bytes) -> Receipt:
    return engine.receive_webhook(name, secret, body)


class HookReceipt(BaseModel):
    status: str = Field(
        description="started; queued while the workspace is stopped; or failed: Prefect refused "
        "to start it (kept as a dead letter for the operator, not retried)."
    )
    request_id: int
    flow_run_id: str | None = Field(default=None, description="The run, once started.")
    position: int | None = Field(default=None, description="1 = the next to start.")
    reason: str | None = Field(default=None, description="Why it waits, or why it failed.")


_HOOK_BODY = {
    "requestBody": {
        "required": True,
        "description": "Any JSON document: it becomes the run's payload.",
        "content": {"application/json": {"schema": {}}},
    }
}


@router.post(
    "/hooks/{name}",
    status_code=202,
    summary="Start (or queue) a workflow run",
    response_model=HookReceipt,
    responses={**CLIENT_ERRORS, **error_responses(400, 401, 402, 413, 503)},
    openapi_extra=_HOOK_BODY,
)
async def receive_hook(name: str, request: Request) -> JSONResponse:
    body = await request.body()
    receipt = await run_in_threadpool(_receive, engine_of(request), name, _secret(request), body)
    out: dict[str, Any] = {"status": receipt.status, "request_id": receipt.request_id}
    if receipt.flow_run_id is not None:
        out["flow_run_id"] = receipt.flow_run_id
    if receipt.position is not None:
        out["position"] = receipt.position
    if receipt.reason is not None:
        out["reason"] = receipt.reason
    return JSONResponse(out, status_code=202)
