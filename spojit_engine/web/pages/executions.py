"""Executions: ``/executions`` (recent runs, the latest started first, a page at a time) and
``/executions/{run}`` (one run's credits per node, with tokens and models). A member sees only
their own runs; an admin sees the workspace's. Server-rendered, read only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from spojit_engine.errors import SpojitError, http_status
from spojit_engine.web.auth import EngineDep
from spojit_engine.web.pages.signin import PageRefused, PageSession, message
from spojit_engine.web.pages.templating import render

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/executions")
def executions(
    engine: EngineDep,
    session: PageSession,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Executions: recent runs, the latest started first, one page at a time."""
    member = session.member
    size = engine.settings.executions_page_size
    runs = engine.executions(
        member.workspace_id,
        member_id=None if member.is_admin else member.id,
        limit=size + 1,  # one more tells whether an older page exists
        offset=(page - 1) * size,
    )
    return render(
        "executions.html",
        session=session,
        runs=runs[:size],
        emails=engine.member_emails(member.workspace_id),
        page=page,
        older=len(runs) > size,
        mine_only=not member.is_admin,
    )


@router.get("/executions/{run}")
def execution(engine: EngineDep, session: PageSession, run: str) -> Response:
    """One run: credits per node, with tokens and models."""
    member = session.member
    try:
        detail = engine.execution(
            member.workspace_id, run, member_id=None if member.is_admin else member.id
        )
    except SpojitError as exc:
        raise PageRefused(message("No such run", str(exc), http_status(exc))) from None
    return render(
        "execution.html",
        session=session,
        detail=detail,
        emails=engine.member_emails(member.workspace_id),
    )
