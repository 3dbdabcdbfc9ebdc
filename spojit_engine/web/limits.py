"""A request body larger than ``SPOJIT_REQUEST_BODY_MAX_BYTES`` is refused with 413 before any
route reads it, whether it declares its length or streams it; a JSON body nested too deep or with
too long a number is refused with 400 (``jsonbody.check_json_shape``) — except on the routes that
parse their raw bytes themselves through ``jsonbody.parse_json`` (``RAW_BODY_ROUTES``)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spojit_engine.errors import InvalidInput
from spojit_engine.jsonbody import check_json_shape

RAW_BODY_ROUTES = ("/webhooks/stripe", "/hooks/")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, depth_max: int, digits_max: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.depth_max = depth_max
        self.digits_max = digits_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._too_large(send)
                return
            more = message.get("more_body", False)
        if body and not str(scope.get("path", "")).startswith(RAW_BODY_ROUTES):
            try:
                check_json_shape(bytes(body), depth_max=self.depth_max, digits_max=self.digits_max)
            except InvalidInput as exc:
                await self._refuse(send, 400, str(exc), exc.code)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes."
        await self._refuse(send, 413, message, "body_too_large")

    async def _refuse(self, send: Send, status: int, message: str, code: str) -> None:
        payload: dict[str, Any] = {"error": message, "code": code}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})
