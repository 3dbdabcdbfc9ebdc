"""Settings → Billing: ``/billing`` (a banner while the credit guard has paused work: what, why,
and what fixes it; Usage this period, the daily chart, View breakdown, and for admins Buy credits
and Change plan), ``/billing/success`` (Stripe Checkout returns here), and the
two forms ``/billing/topup`` and ``/billing/plan``. Server-rendered (``templates/billing.html``),
no script; each form POSTs with the session's CSRF token (``signin.checked_form``). A member sees
the card and only their own consumption; buying and plan changes are for admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from spojit_engine.display import credits_text
from spojit_engine.engine import Engine
from spojit_engine.errors import Forbidden, SpojitError, http_status
from spojit_engine.money import ucr_to_credits
from spojit_engine.results import BrowserSession
from spojit_engine.web.auth import EngineDep
from spojit_engine.web.pages.charts import daily_chart
from spojit_engine.web.pages.signin import (
    PageSession,
    checked_form,
    message,
    optional_session,
    page_session,
)
from spojit_engine.web.pages.templating import PAGE_HEADERS, render

router = APIRouter(tags=["pages"], include_in_schema=False)

BREAKDOWNS = (  # dimension, table caption, first column's heading
    ("workflow", "Per workflow", "Workflow"),
    ("node_type", "Per node type", "Node type"),
    ("member", "Per member", "Member"),
    ("test_run", "Test vs live", "Runs"),
)
NOTICES = {
    "cancelled": "Checkout cancelled; nothing was charged.",
    "plan": "Plan updated.",
}


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    credits: Decimal
    calls: int


@dataclass(frozen=True, slots=True)
class Table:
    dimension: str
    title: str
    heading: str
    lines: list[Line]
    total: Decimal
    calls: int


@dataclass(frozen=True, slots=True)
class PackOffer:
    id: str
    name: str
    credits: Decimal
    price_cents: int
    cents_per_credit: Decimal
    saving_percent: int  # against the dearest pack per credit


def _table(
    dimension: str, title: str, heading: str, rows: Sequence[Any], emails: dict[str, str]
) -> Table:
    """One breakdown, test and live merged per label (except in test vs live), largest first."""
    merged: dict[str, list[Any]] = {}
    for row in rows:
        entry = merged.setdefault(row.label(dimension, emails), [Decimal(0), 0])
        entry[0] += row.credits
        entry[1] += row.calls
    lines = sorted((Line(k, c, n) for k, (c, n) in merged.items()), key=lambda x: -x.credits)
    total = sum((x.credits for x in lines), Decimal(0))
    return Table(dimension, title, heading, lines, total, sum(x.calls for x in lines))


def _breakdowns(engine: Engine, workspace_id: str, only: str | None) -> list[Table]:
    per_dim = {d[0]: engine.breakdown(workspace_id, by=(d[0],), member_id=only) for d in BREAKDOWNS}
    emails = engine.member_emails(workspace_id)
    return [_table(d, title, head, per_dim[d], emails) for d, title, head in BREAKDOWNS]


def _offers(engine: Engine) -> list[PackOffer]:
    packs = sorted(engine.packs(), key=lambda p: p.credits_ucr)
    per_credit = {p.id: Decimal(p.price_cents) / ucr_to_credits(p.credits_ucr) for p in packs}
    dearest = max(per_credit.values(), default=Decimal(1))
    return [
        PackOffer(
            p.id,
            p.name,
            ucr_to_credits(p.credits_ucr),
            p.price_cents,
            per_credit[p.id].quantize(Decimal("0.01")),
            int((1 - per_credit[p.id] / dearest) * 100) if dearest else 0,
        )
        for p in packs
    ]


def billing_context(engine: Engine, session: BrowserSession) -> dict[str, Any]:
    """Everything ``billing.html`` shows to this member (admins see more)."""
    member = session.member
    only = None if member.is_admin else member.id
    balance = engine.balance(member.workspace_id)
    now = engine.now()
    period = balance.resets_at - balance.period_start
    elapsed = min(max((now - balance.period_start) / period, 0.0), 1.0) if period else 1.0
    available = balance.consumed + balance.remaining
    used = balance.consumed / available if available > 0 else Decimal(1 if balance.consumed else 0)
    days = engine.timeline(member.workspace_id, member_id=only)
    chart = daily_chart(
        [(d.day, d.credits) for d in days],
        first=balance.period_start.date(),
        end=balance.resets_at.date(),
        today=now.date(),
    )
    context: dict[str, Any] = {
        "session": session,
        "balance": balance,
        "used_percent": int(min(used, Decimal(1)) * 100),
        "elapsed_percent": int(elapsed * 100),
        "period_days": period.days,
        "day_of_period": min(period.days, (now - balance.period_start).days + 1),
        "chart": chart,
        "breakdowns": _breakdowns(engine, member.workspace_id, only),
        "paused": engine.paused_work(member.workspace_id),
        "mine_only": only is not None,
        "offers": [],
        "plans": [],
        "advice": [],
        "currency": engine.currency(),
        "plan_names": {p.id: p.name for p in engine.plans()},
    }
    if member.is_admin:  # the cost advisor reads each workflow's history: admins only
        context["offers"] = _offers(engine)
        context["plans"] = engine.plans()
        context["advice"] = engine.advice(member.workspace_id)
    return context


def _page_error(exc: SpojitError) -> Response:
    return message("That did not work", str(exc), http_status(exc), hint="Nothing was changed.")


@router.get("/billing")
def billing(
    engine: EngineDep,
    session: PageSession,
    checkout: Annotated[str | None, Query(max_length=16)] = None,
    done: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    """Settings → Billing: the card, the chart, the breakdown; Buy credits and plans (admins)."""
    notice = NOTICES.get("cancelled" if checkout == "cancelled" else (done or ""))
    return render("billing.html", notice=notice, **billing_context(engine, session))


@router.get("/billing/success")
def checkout_success(
    request: Request,
    engine: EngineDep,
    session_id: Annotated[str, Query(max_length=255)],
    signed_in: Annotated[BrowserSession | None, Depends(optional_session)],
) -> Response:
    """Stripe Checkout returns the buyer here: grant at once if Stripe says it is paid (at most
    once; the webhook may have come first), then show the card with the new credits (signed
    out: the confirmation alone)."""
    try:
        order = engine.fulfil_checkout(session_id)
    except SpojitError as exc:
        return message("Payment not recorded", str(exc), http_status(exc))
    if order.state in ("paid", "refunded", "disputed"):
        notice = f"Payment received: {credits_text(order.credits)} credits were added."
    else:
        notice = (
            "Stripe is still processing the payment; the credits land as soon as it clears "
            f"(order {order.id} is {order.state})."
        )
    if signed_in is None and request.headers.get("sec-fetch-site") != "cross-site":
        return message("Thank you", notice, 200, hint="Sign in to see the billing page.")
    session = page_session(request, signed_in)  # back from Stripe: reloads once (signin.py)
    if order.workspace_id != session.member.workspace_id:
        return _page_error(Forbidden("This payment belongs to another workspace."))
    return render("billing.html", notice=notice, **billing_context(engine, session))


@router.post("/billing/topup")
async def buy_credits(request: Request, engine: EngineDep, session: PageSession) -> Response:
    """Buy credits (admins): create the Checkout Session, then send the browser to Stripe."""
    fields = await checked_form(request, session)
    try:
        started = await run_in_threadpool(
            engine.topup,
            session.member.workspace_id,
            fields.get("pack", ""),
            by=session.member.id,
        )
    except SpojitError as exc:
        return _page_error(exc)
    return RedirectResponse(started.checkout_url, status_code=303, headers=PAGE_HEADERS)


@router.post("/billing/plan")
async def change_plan(request: Request, engine: EngineDep, session: PageSession) -> Response:
    """Change plan (admins): an upgrade at once, a downgrade at the next reset."""
    fields = await checked_form(request, session)
    try:
        await run_in_threadpool(
            engine.set_plan,
            session.member.workspace_id,
            fields.get("plan", ""),
            by=session.member.id,
        )
    except SpojitError as exc:
        return _page_error(exc)
    return RedirectResponse("/billing?done=plan", status_code=303, headers=PAGE_HEADERS)
