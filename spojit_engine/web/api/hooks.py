"""``POST /hooks/{name}``: a workflow webhook. The JSON body becomes the run's ``payload``.

Authenticated by the hook's own secret (``Authorization: Bearer <secret>`` or
``X-Spojit-Secret: <secret>``), never by a member token. Answers 202 with
``{"status": "started", "flow_run_id"}`` or, while the workspace is out of credits,
``{"status": "queued", "position", "reason"}``; 402 when the queue is full. Bad input is refused
before anything is queued or charged: 413 too large (``BodyLimit``), 404 unknown hook, 401 wrong
secret, 400 malformed JSON.
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
    status: str = Field(description="started, or queued while the workspace is stopped.")
    request_id: int
    flow_run_id: str | None = Field(default=None, description="The run, once started.")
    position: int | None = Field(default=None, description="1 = the next to start.")
    reason: str | None = Field(default=None, description="Why it waits.")


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
        out["reason"] = receipt.reason
    return JSONResponse(out, status_code=202)
