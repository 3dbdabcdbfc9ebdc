"""What every JSON router shares, so the OpenAPI schema says each thing once: the ``Error`` body
and ``error_responses`` (the statuses a route declares), the bearer scheme and ``member_router``
(``/api/v1``, a member token), ``Credits``, the decimal string credits travel as, ``Line``, the
text a person writes, and ``setting_maximum``/``state_bounds``: a parameter whose bound is a
setting states the app's own value as its ``maximum``, so the schema is exactly as strict as the
server (a schema-valid request is never refused for a bound the schema did not state)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from spojit_engine.settings import Settings
from spojit_engine.text import LINE_PATTERN

Credits = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+\.[0-9]{6}$",
        examples=["12.500000"],
        description=(
            "Credits as an exact decimal string with six places (1 credit = 1,000,000 µcr). "
            "People read them by spojit_engine.display's rule: never rounded, at least two "
            "places, more only when the amount has them, one number of places per column."
        ),
    ),
]
Line = Annotated[
    str,
    Field(
        pattern=LINE_PATTERN,
        description="Text with something visible in it, and no control or invisible format "
        "characters (spojit_engine/text.py).",
    ),
]
bearer = HTTPBearer(
    auto_error=False,
    description="A member token (`spojit init` or `spojit member add` prints it once).",
)


class Error(BaseModel):
    error: str = Field(description="One sentence a person can act on.")
    code: str = Field(description="A stable code, e.g. admin_required, unknown_pack.")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: each of ``statuses`` answers with an ``Error``."""
    return {status: {"model": Error} for status in statuses}


# Every 4xx is an ``Error`` (validation errors too: 400, never FastAPI's 422), so "4XX" is
# declared once and FastAPI adds no 422 of its own to the schema.
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Error, "description": "Refused: bad input (400), body too large (413)…"}
}
MEMBER_ERRORS = {**error_responses(401), **CLIENT_ERRORS}


def member_router() -> APIRouter:
    """A router under ``/api/v1`` whose routes all need a member token (401 without one)."""
    return APIRouter(prefix="/api/v1", dependencies=[Security(bearer)], responses=MEMBER_ERRORS)


_SETTING_MARK = "x-spojit-maximum-setting"
_FUTURE_MARK = "x-spojit-future"
FUTURE_MARGIN_DAYS = 2  # a day that starts this many days ahead is in the future in any offset


def setting_maximum(setting: str) -> dict[str, Any]:
    """A parameter's ``json_schema_extra``: its maximum is the app's setting ``setting`` (the
    ``Engine`` refuses a larger value with a 400; ``state_bounds`` writes it into the schema)."""
    return {_SETTING_MARK: setting}


def in_the_future() -> dict[str, Any]:
    """A date-time field's ``json_schema_extra``: it must be in the future. JSON Schema has no
    "after now", so ``state_bounds`` states it as a pattern: dates from the day after tomorrow
    (UTC) on, rebuilt each day — never looser than the server (a time later today or tomorrow
    is accepted by the server, but not promised by the schema)."""
    return {_FUTURE_MARK: True}


def state_bounds(app: FastAPI, settings: Settings, today: Callable[[], date]) -> None:
    """Have ``app.openapi()`` state each marked bound: a ``setting_maximum`` as ``settings`` set
    it, an ``in_the_future`` date as of ``today()`` (the schema is rebuilt when the day turns)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    built_on: list[date] = []

    def openapi() -> dict[str, Any]:
        day = today()
        if app.openapi_schema is None or built_on != [day]:
            app.openapi_schema = None
            _mark(build(), settings, first_day=day + timedelta(days=FUTURE_MARGIN_DAYS))
            built_on[:] = [day]
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _mark(node: Any, settings: Settings, *, first_day: date) -> None:
    """Replace every mark in the schema ``node`` (walked whole) by the bound it names."""
    if isinstance(node, list):
        for item in node:
            _mark(item, settings, first_day=first_day)
        return
    if not isinstance(node, dict):
        return
    setting = node.pop(_SETTING_MARK, None)
    future = node.pop(_FUTURE_MARK, None)
    for branch in node.get("anyOf", [node]):
        if setting is not None and branch.get("type") == "integer":
            branch["maximum"] = getattr(settings, setting)
        if future and branch.get("format") == "date-time":
            branch["pattern"] = on_or_after(first_day)
    for value in node.values():
        _mark(value, settings, first_day=first_day)


def _greater(digits: str) -> list[str]:
    """Regexes matching exactly the decimal strings of ``digits``' length above it."""
    return [
        digits[:i] + f"[{int(d) + 1}-9]" + r"\d" * (len(digits) - i - 1)
        for i, d in enumerate(digits)
        if d != "9"
    ]


def on_or_after(day: date) -> str:
    """A pattern for an RFC 3339 date-time whose date is ``day`` or later (years up to 9999)."""
    before = day - timedelta(days=1)
    year, month = f"{day:%Y}", f"{day:%m}"
    day_floor = f"{before:%d}" if before.month == day.month else "00"
    branches = [
        *(rf"{y}-\d\d-\d\d" for y in _greater(year)),
        *(rf"{year}-{m}-\d\d" for m in _greater(month)),
        *(f"{year}-{month}-{d}" for d in _greater(day_floor)),
    ]
    return f"^(?:{'|'.join(branches)})T"
