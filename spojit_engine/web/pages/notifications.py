"""Settings → Notifications (admins): the workspace's rules, a form to add one, and per rule
"Send a test" and "Remove" — thin callers of ``Engine.notification_rules``, ``add_notification``,
``test_notification`` and ``remove_notification``, with the latest alerts and their delivery.
Every form carries the session's CSRF token; members get a 403 page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import String
from starlette.concurrency import run_in_threadpool

from spojit_engine.engine import Engine
from spojit_engine.errors import AdminRequired, InvalidInput, SpojitError, http_status
from spojit_engine.notify.decide import THRESHOLDS_PERCENT
from spojit_engine.notify.schema import notification_rules
from spojit_engine.results import BrowserSession
from spojit_engine.web.auth import EngineDep
from spojit_engine.web.pages.signin import PageRefused, PageSession, checked_form, message
from spojit_engine.web.pages.templating import PAGE_HEADERS, render

router = APIRouter(tags=["pages"], include_in_schema=False)
PAGE = "/settings/notifications"
DONE = {"added": "Notification added.", "removed": "Notification removed.",
        "tested": "Test sent; its delivery is listed under Recent alerts."}  # fmt: skip
RECENT_ALERTS = 10


def _chars_max(column: str) -> int | None:
    """How many characters a rule's ``column`` holds in the database."""
    column_type = notification_rules.c[column].type
    return column_type.length if isinstance(column_type, String) else None


# The form's text fields take at most what their columns hold (``maxlength``).
CHARS_MAX = {column: _chars_max(column) for column in ("workflow", "target")}


def _admin(session: BrowserSession) -> BrowserSession:
    if not session.member.is_admin:
        error = AdminRequired("manage notifications", session.member.email)
        raise PageRefused(message("Notifications", str(error), 403))
    return session


def _page(engine: Engine, session: BrowserSession, *, notice: str | None = None,
          error: str | None = None, status: int = 200) -> Response:  # fmt: skip
    ws = session.member.workspace_id
    return render(
        "notifications.html",
        status,
        session=session,
        active="notifications",
        rules=engine.notification_rules(ws),
        sent=engine.notifications_sent(ws, limit=RECENT_ALERTS),
        workflows=sorted(
            {r.workflow for r in engine.breakdown(ws, by=("workflow",)) if r.workflow}
        ),
        notice=notice,
        error=error,
        runs_max=engine.settings.notify_regression_runs_max,
        thresholds_percent=THRESHOLDS_PERCENT,
        chars_max=CHARS_MAX,
    )


@router.get(PAGE)
def notifications(
    engine: EngineDep,
    session: PageSession,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """The rules, the add form and the latest alerts."""
    return _page(engine, _admin(session), notice=DONE.get(done or ""))


def _rule_fields(form: dict[str, str]) -> dict[str, Any]:
    """The add form's fields as ``Engine.add_notification`` takes them (blank means absent)."""
    value = {k: v.strip() for k, v in form.items() if v.strip()}
    kind = value.get("kind", "thresholds")
    target = value.get("target", "")
    runs = value.get("runs")
    if runs is not None and not runs.isdigit():
        raise InvalidInput(f"Earlier runs must be a whole number, not {runs!r}.")
    return {
        "kind": kind,
        "webhook": target if value.get("channel", "webhook") == "webhook" else None,
        "block": target if value.get("channel") == "block" else None,
        "workflow": value.get("workflow") if kind != "thresholds" else None,
        "above": value.get("above") if kind == "run_above" else None,
        "factor": value.get("factor") if kind == "regression" else None,
        "runs": int(runs) if runs is not None and kind == "regression" else None,
    }


@router.post(PAGE)
async def add(request: Request, engine: EngineDep, session: PageSession) -> Response:
    """Add a rule from the form."""
    form = await checked_form(request, _admin(session))
    try:
        fields = _rule_fields(form)
        await run_in_threadpool(
            lambda: engine.add_notification(session.member.workspace_id, **fields)
        )
    except SpojitError as exc:
        return _page(engine, session, error=str(exc), status=http_status(exc))
    return RedirectResponse(f"{PAGE}?done=added", status_code=303, headers=PAGE_HEADERS)


@router.post(PAGE + "/{rule_id}/{action}")
async def act(
    request: Request, engine: EngineDep, session: PageSession, rule_id: str, action: str
) -> Response:
    """``test`` (send a test alert now) or ``remove`` one rule."""
    await checked_form(request, _admin(session))
    ws = session.member.workspace_id
    calls = {"test": (engine.test_notification, "tested"),
             "remove": (engine.remove_notification, "removed")}  # fmt: skip
    if action not in calls:
        return message("Notifications", f"Unknown action {action!r}.", 404)
    call, done = calls[action]
    try:
        await run_in_threadpool(call, ws, rule_id)
    except SpojitError as exc:
        return _page(engine, session, error=str(exc), status=http_status(exc))
    return RedirectResponse(f"{PAGE}?done={done}", status_code=303, headers=PAGE_HEADERS)
