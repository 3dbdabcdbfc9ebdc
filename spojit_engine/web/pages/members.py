"""Settings → Members (admins): the workspace's members with email, role and when they were added,
and per member "Rotate token" (the new token is shown once, on the answer to that form) and
"Remove" — thin callers of ``Engine.members``, ``rotate_token`` and ``remove_member``. Every form
carries the session's CSRF token; members get a 403 page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from spojit_engine.accounts import MemberRecord
from spojit_engine.engine import Engine
from spojit_engine.errors import AdminRequired, SpojitError, http_status
from spojit_engine.results import BrowserSession
from spojit_engine.web.auth import EngineDep
from spojit_engine.web.pages.signin import PageRefused, PageSession, checked_form, message
from spojit_engine.web.pages.templating import PAGE_HEADERS, render

router = APIRouter(tags=["pages"], include_in_schema=False)
PAGE = "/settings/members"
DONE = {"removed": "Member removed; their token and browser sessions are refused from now on."}


def _admin(session: BrowserSession) -> BrowserSession:
    if not session.member.is_admin:
        error = AdminRequired("manage members", session.member.email)
        raise PageRefused(message("Members", str(error), 403))
    return session


def _page(engine: Engine, session: BrowserSession, *, notice: str | None = None,
          error: str | None = None, rotated: MemberRecord | None = None,
          status: int = 200) -> Response:  # fmt: skip
    return render(
        "members.html",
        status,
        session=session,
        active="members",
        members=engine.members(session.member.workspace_id),
        notice=notice,
        error=error,
        rotated=rotated,
    )


@router.get(PAGE)
def members(
    engine: EngineDep,
    session: PageSession,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The members and their actions."""
    return _page(engine, _admin(session), notice=DONE.get(done or ""))


@router.post(PAGE + "/{member_id}/{action}")
async def act(
    request: Request, engine: EngineDep, session: PageSession, member_id: str, action: str
) -> Response:
    """``rotate`` a member's token (the new one shown on this answer only) or ``remove`` them."""
    await checked_form(request, _admin(session))
    ws, by = session.member.workspace_id, session.member.id
    if action not in ("rotate", "remove"):
        return message("Members", f"Unknown action {action!r}.", 404)
    try:
        if action == "rotate":
            rotated = await run_in_threadpool(lambda: engine.rotate_token(ws, member_id, by=by))
            return await run_in_threadpool(lambda: _page(engine, session, rotated=rotated))
        await run_in_threadpool(lambda: engine.remove_member(ws, member_id, by=by))
    except SpojitError as exc:
        error, status = str(exc), http_status(exc)
        return await run_in_threadpool(lambda: _page(engine, session, error=error, status=status))
    return RedirectResponse(f"{PAGE}?done=removed", status_code=303, headers=PAGE_HEADERS)
