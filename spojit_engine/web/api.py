"""The JSON API (``/api/v1``): usage, breakdown, executions, plans, packs, top-ups, plan changes
(grants: ``grants.py``).

Every route needs a member token (``Authorization: Bearer …``) and acts on that member's own
workspace — no route takes a workspace, so no token reaches another's. A member sees only their
own runs and consumption; buying and changing plan are for admins. Credits are decimal strings
with six places, times ISO 8601. The response models below are what the routes return, so the
OpenAPI schema is the contract.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from spojit_engine.display import credits_exact
from spojit_engine.money import ucr_to_credits
from spojit_engine.results import Execution, TopupOrder
from spojit_engine.web.auth import Admin, EngineDep, Member

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


def credits(amount: Decimal) -> str:
    return credits_exact(amount)


class Error(BaseModel):
    error: str = Field(description="One sentence a person can act on.")
    code: str = Field(description="A stable code, e.g. admin_required, unknown_pack.")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Error} for status in statuses}


# Every 4xx is an ``Error`` (validation errors too: 400, never FastAPI's 422), so "4XX" is
# declared once and FastAPI adds no 422 of its own to the schema.
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Error, "description": "Refused: bad input (400), body too large (413)…"}
}
MEMBER_ERRORS = {**_errors(401), **CLIENT_ERRORS}
router = APIRouter(prefix="/api/v1", dependencies=[Security(bearer)], responses=MEMBER_ERRORS)


class UsageCard(BaseModel):
    workspace_id: str
    workspace: str
    plan: str
    pending_plan: str | None = Field(description="A downgrade waiting for the reset.")
    consumed: Credits
    remaining: Credits
    allowance_remaining: Credits
    topup_remaining: Credits
    other_remaining: Credits
    held: Credits
    overdraft: Credits
    period_start: datetime
    resets_at: datetime


class BreakdownItem(BaseModel):
    workflow: str | None
    node_type: str | None
    member: str | None = Field(description="A member id, when broken down by member.")
    test_run: bool
    credits: Credits
    calls: int


class BreakdownTotal(BaseModel):
    credits: Credits = Field(description="The sum of the rows: the period's consumed.")
    calls: int


class Breakdown(BaseModel):
    since: datetime = Field(description="The start of the current billing period.")
    by: list[str]
    only_member: str | None = Field(description="Set when a member sees only their own.")
    rows: list[BreakdownItem]
    total: BreakdownTotal


class TimelineItem(BaseModel):
    day: date = Field(description="A day; it starts at the workspace's reset time of day.")
    credits: Credits
    calls: int
    workflow: str | None = Field(description="The workflow that took the most credits that day.")
    workflow_credits: Credits | None
    node_type: str | None
    node_type_credits: Credits | None
    model: str | None = Field(description="The models of the LLM calls that cost the most.")
    model_credits: Credits | None


class ExecutionItem(BaseModel):
    flow_run_id: str
    run_name: str | None = Field(description="Prefect's flow run name.")
    trigger: str | None = Field(description="schedule, webhook, automation, manual or test.")
    workflow: str | None
    started_at: datetime
    finished_at: datetime
    status: str = Field(description="ok, failed or out of credits.")
    test_run: bool
    member_id: str | None
    member: str | None = Field(description="The member's email.")
    node_calls: int
    credits: Credits


class PlanItem(BaseModel):
    id: str
    name: str
    allowance_credits: Credits
    price_cents: int
    term_months: int


class PackItem(BaseModel):
    id: str
    name: str
    credits: Credits
    price_cents: int
    currency: str
    cents_per_credit: str = Field(examples=["1.80"], description="Lower for larger packs.")


class TopupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pack: str = Field(min_length=1, max_length=64, examples=["medium"])


class CheckoutCreated(BaseModel):
    order_id: str
    session_id: str
    checkout_url: str = Field(description="Send the buyer here (Stripe Checkout).")


class OrderItem(BaseModel):
    id: str
    pack: str
    credits: Credits
    amount_cents: int
    currency: str
    state: str = Field(description="pending, paid, failed, expired, refunded or disputed.")
    checkout_url: str | None
    refunded_cents: int
    dispute_status: str | None
    clawed_back: Credits
    created_at: datetime
    updated_at: datetime


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=32, examples=["pro"])


class PlanChanged(BaseModel):
    plan: str = Field(description="The plan in force now.")
    pending_plan: str | None = Field(description="A downgrade that starts at the reset.")
    effective_at: datetime


@router.get("/usage", response_model=UsageCard, summary="Usage this period")
def usage(member: Member, engine: EngineDep) -> UsageCard:
    b = engine.balance(member.workspace_id)
    return UsageCard(
        workspace_id=b.workspace_id,
        workspace=b.workspace,
        plan=b.plan,
        pending_plan=b.pending_plan,
        consumed=credits(b.consumed),
        remaining=credits(b.remaining),
        allowance_remaining=credits(b.allowance_remaining),
        topup_remaining=credits(b.topup_remaining),
        other_remaining=credits(b.other_remaining),
        held=credits(b.held),
        overdraft=credits(b.overdraft),
        period_start=b.period_start,
        resets_at=b.resets_at,
    )


@router.get(
    "/usage/breakdown",
    response_model=Breakdown,
    summary="View breakdown (this period)",
    responses=_errors(400),
)
def breakdown(
    member: Member,
    engine: EngineDep,
    by: Annotated[
        str,
        Query(
            max_length=100, description="Comma-separated: workflow, node_type, member, test_run."
        ),
    ] = "workflow,node_type",
) -> Breakdown:
    dims = [d.strip() for d in by.split(",") if d.strip()]
    only = None if member.is_admin else member.id
    since = engine.balance(member.workspace_id).period_start
    rows = engine.breakdown(member.workspace_id, by=dims, since=since, member_id=only)
    return Breakdown(
        since=since,
        by=dims,
        only_member=only,
        rows=[
            BreakdownItem(
                workflow=r.workflow,
                node_type=r.node_type,
                member=r.member,
                test_run=r.test_run,
                credits=credits(r.credits),
                calls=r.calls,
            )
            for r in rows
        ],
        total=BreakdownTotal(
            credits=credits(sum((r.credits for r in rows), Decimal(0))),
            calls=sum(r.calls for r in rows),
        ),
    )


@router.get(
    "/usage/timeline",
    response_model=list[TimelineItem],
    summary="The period day by day: credits, calls and what drove each day",
    responses=_errors(400),
)
def timeline(
    member: Member,
    engine: EngineDep,
    days: Annotated[
        int | None, Query(ge=1, description="The last N days (default: this period).")
    ] = None,
) -> list[TimelineItem]:
    only = None if member.is_admin else member.id
    found = engine.timeline(member.workspace_id, days=days, member_id=only)

    def maybe(amount: Decimal | None) -> str | None:
        return None if amount is None else credits(amount)

    return [
        TimelineItem(
            day=d.day,
            credits=credits(d.credits),
            calls=d.calls,
            workflow=d.workflow,
            workflow_credits=maybe(d.workflow_credits),
            node_type=d.node_type,
            node_type_credits=maybe(d.node_type_credits),
            model=d.model,
            model_credits=maybe(d.model_credits),
        )
        for d in found
    ]


@router.get(
    "/executions",
    response_model=list[ExecutionItem],
    summary="Executions: recent runs, the latest started first (a member sees only their own)",
    responses=_errors(400),
)
def executions(
    member: Member,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0, description="Runs to skip (paging).")] = 0,
) -> list[ExecutionItem]:
    only = None if member.is_admin else member.id
    runs: list[Execution] = engine.executions(
        member.workspace_id, member_id=only, limit=limit, offset=offset
    )
    emails = {m: engine.member(m).email for m in {r.member_id for r in runs if r.member_id}}
    return [
        ExecutionItem(
            flow_run_id=r.flow_run_id,
            run_name=r.run_name,
            trigger=r.trigger,
            workflow=r.workflow,
            started_at=r.started_at,
            finished_at=r.finished_at,
            status=r.status,
            test_run=r.test_run,
            member_id=r.member_id,
            member=emails.get(r.member_id) if r.member_id else None,
            node_calls=r.node_calls,
            credits=credits(r.credits),
        )
        for r in runs
    ]


@router.get("/plans", response_model=list[PlanItem], summary="Plans")
def plans(_: Member, engine: EngineDep) -> list[PlanItem]:
    return [
        PlanItem(
            id=p.id,
            name=p.name,
            allowance_credits=credits(ucr_to_credits(p.allowance_ucr)),
            price_cents=p.price_cents,
            term_months=p.term_months,
        )
        for p in engine.plans()
    ]


@router.get("/packs", response_model=list[PackItem], summary="Top-up packs")
def packs(_: Member, engine: EngineDep) -> list[PackItem]:
    currency = engine.currency()
    return [
        PackItem(
            id=p.id,
            name=p.name,
            credits=credits(ucr_to_credits(p.credits_ucr)),
            price_cents=p.price_cents,
            currency=currency,
            cents_per_credit=f"{Decimal(p.price_cents) / ucr_to_credits(p.credits_ucr):.2f}",
        )
        for p in engine.packs()
    ]


@router.post(
    "/topups",
    status_code=201,
    response_model=CheckoutCreated,
    summary="Buy a top-up pack (admins): a Stripe Checkout Session",
    responses=_errors(400, 403, 404, 413, 502, 503),
)
def create_topup(body: TopupRequest, admin: Admin, engine: EngineDep) -> CheckoutCreated:
    started = engine.topup(admin.workspace_id, body.pack, by=admin.id)
    return CheckoutCreated(
        order_id=started.order_id,
        session_id=started.session_id,
        checkout_url=started.checkout_url,
    )


@router.get(
    "/topups",
    response_model=list[OrderItem],
    summary="Top-up orders, newest first (admins)",
    responses=_errors(403),
)
def list_topups(
    admin: Admin, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[OrderItem]:
    orders: list[TopupOrder] = engine.orders(admin.workspace_id, limit=limit)
    return [
        OrderItem(
            id=o.id,
            pack=o.pack,
            credits=credits(o.credits),
            amount_cents=o.amount_cents,
            currency=o.currency,
            state=o.state,
            checkout_url=o.checkout_url if o.state == "pending" else None,
            refunded_cents=o.refunded_cents,
            dispute_status=o.dispute_status,
            clawed_back=credits(o.clawed_back),
            created_at=o.created_at,
            updated_at=o.updated_at,
        )
        for o in orders
    ]


@router.put(
    "/plan",
    response_model=PlanChanged,
    summary="Change plan (admins): an upgrade at once, a downgrade at the reset",
    responses=_errors(400, 403, 404, 413),
)
def change_plan(body: PlanRequest, admin: Admin, engine: EngineDep) -> PlanChanged:
    change = engine.set_plan(admin.workspace_id, body.plan, by=admin.id)
    return PlanChanged(
        plan=change.plan_id, pending_plan=change.pending_plan_id, effective_at=change.effective_at
    )
