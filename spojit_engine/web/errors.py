"""Every error leaves as JSON ``{"error": "<one sentence>", "code": …}`` with the right status:
our errors through ``errors.HTTP_STATUS``, FastAPI's validation and routing errors rephrased
(a 405 keeps Starlette's ``Allow`` header, which names the methods the route takes)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spojit_engine.errors import SpojitError, http_status


def error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SpojitError)
    async def spojit_error(_: Request, exc: SpojitError) -> JSONResponse:
        return error_response(http_status(exc), str(exc), exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        if first.get("type") == "json_invalid":
            return error_response(400, "The request body is not valid JSON.", "invalid_json")
        return error_response(
            400, f"Invalid {where}: {first.get('msg', 'invalid')}.", "invalid_input"
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "No such route.", 405: "Method not allowed on this route."}
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail.endswith(".") else None
        return error_response(
            exc.status_code,
            detail or messages.get(exc.status_code, "Request refused."),
            "http",
            headers=exc.headers,
        )
