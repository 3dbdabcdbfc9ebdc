"""What every JSON router shares, so the OpenAPI schema says each thing once: the ``Error`` body
and ``error_responses`` (the statuses a route declares), the bearer scheme and ``member_router``
(``/api/v1``, a member token), and ``Credits``, the decimal string credits travel as."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

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
