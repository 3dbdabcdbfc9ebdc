"""Who a request is: the ``Engine`` the app holds, and for the JSON API the member whose token
``Authorization: Bearer <member token>`` carries (of one workspace); also who a workspace's
members are, for naming who ran what."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from spojit_engine.accounts import MemberRecord
from spojit_engine.engine import Engine
from spojit_engine.errors import Forbidden, Unauthorized


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_member(request: Request) -> MemberRecord:
    """The member whose token the request carries; 401 when it carries none or a bad one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send a member token as 'Authorization: Bearer <token>'.")
    return engine_of(request).authenticate(token.strip())


def current_admin(member: Annotated[MemberRecord, Depends(current_member)]) -> MemberRecord:
    """The member, who must be an admin of their workspace (403 otherwise)."""
    if not member.is_admin:
        raise Forbidden(f"Only a workspace admin may do this; {member.email} is a member.")
    return member


Member = Annotated[MemberRecord, Depends(current_member)]
Admin = Annotated[MemberRecord, Depends(current_admin)]
EngineDep = Annotated[Engine, Depends(engine_of)]
