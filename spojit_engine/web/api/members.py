"""``/api/v1/members``: a workspace's members (admins list and remove them), and rotating a
member token — anyone's for an admin, their own for a member. A removed or rotated token is
refused from the next request on; the new token is in the rotate answer only (it is stored only
as its hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, Field

from spojit_engine.accounts import MemberRecord
from spojit_engine.metering.store.schema import ID_LENGTH_MAX
from spojit_engine.web.api.openapi import error_responses, member_router
from spojit_engine.web.auth import Admin, EngineDep, Member

router = member_router()

MemberId = Annotated[
    str,
    Path(
        pattern=rf"^[A-Za-z0-9_]{{1,{ID_LENGTH_MAX}}}$",
        examples=["mem_0123456789abcdef"],
        description="The member's id (GET /api/v1/members lists them).",
    ),
]


class MemberItem(BaseModel):
    id: str
    email: str
    role: str = Field(description="admin or member.")
    added_at: datetime | None
    removed_at: datetime | None = Field(description="When an admin removed them; null: current.")


class RotatedToken(BaseModel):
    member: MemberItem
    token: str = Field(description="The new member token, shown this once; the old one is dead.")


def _item(member: MemberRecord) -> MemberItem:
    return MemberItem(
        id=member.id,
        email=member.email,
        role=member.role,
        added_at=member.added_at,
        removed_at=member.removed_at,
    )


@router.get(
    "/members",
    response_model=list[MemberItem],
    summary="The workspace's members, by email (admins)",
    responses=error_responses(403),
)
def list_members(
    admin: Admin,
    engine: EngineDep,
    removed: Annotated[bool, Query(description="Include removed members.")] = False,
) -> list[MemberItem]:
    return [_item(m) for m in engine.members(admin.workspace_id, removed=removed)]


@router.delete(
    "/members/{member_id}",
    response_model=MemberItem,
    summary="Remove a member (admins): their token is refused at once; history keeps them",
    responses=error_responses(403, 404, 409),
)
def remove_member(member_id: MemberId, admin: Admin, engine: EngineDep) -> MemberItem:
    return _item(engine.remove_member(admin.workspace_id, member_id, by=admin.id))


@router.post(
    "/members/{member_id}/rotate",
    response_model=RotatedToken,
    summary="A new token for a member (own token, or admins for anyone); the old one is refused",
    responses=error_responses(403, 404, 409),
)
def rotate_token(member_id: MemberId, member: Member, engine: EngineDep) -> RotatedToken:
    rotated = engine.rotate_token(member.workspace_id, member_id, by=member.id)
    assert rotated.token is not None  # rotate_token always returns the new token
    return RotatedToken(member=_item(rotated), token=rotated.token)
