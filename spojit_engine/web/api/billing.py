"""The JSON billing routes (``/api/v1``): plans, top-up packs, buying a pack (a Stripe Checkout
Session), the top-up orders and plan changes. Any member reads plans and packs; buying, the orders
and plan changes are for admins (the ``Engine`` refuses the rest too)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from spojit_engine.display import credits_exact
from spojit_engine.money import ucr_to_credits
from spojit_engine.results import TopupOrder
from spojit_engine.web.api.openapi import (
    Credits,
    error_responses,
    member_router,
    setting_maximum,
)
from spojit_engine.web.auth import Admin, EngineDep, Member

router = member_router()


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


@router.get("/plans", response_model=list[PlanItem], summary="Plans")
def plans(_: Member, engine: EngineDep) -> list[PlanItem]:
    return [
        PlanItem(
            id=p.id,
            name=p.name,
            allowance_credits=credits_exact(ucr_to_credits(p.allowance_ucr)),
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
            credits=credits_exact(ucr_to_credits(p.credits_ucr)),
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
    responses=error_responses(400, 403, 404, 413, 502, 503),
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
    responses=error_responses(403),
)
def list_topups(
    admin: Admin,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, json_schema_extra=setting_maximum("page_size_max"))] = 50,
) -> list[OrderItem]:
    orders: list[TopupOrder] = engine.orders(admin.workspace_id, limit=limit)
    return [
        OrderItem(
            id=o.id,
            pack=o.pack,
            credits=credits_exact(o.credits),
            amount_cents=o.amount_cents,
            currency=o.currency,
            state=o.state,
            checkout_url=o.checkout_url if o.state == "pending" else None,
            refunded_cents=o.refunded_cents,
            dispute_status=o.dispute_status,
            clawed_back=credits_exact(o.clawed_back),
            created_at=o.created_at,
            updated_at=o.updated_at,
        )
        for o in orders
    ]


@router.put(
    "/plan",
    response_model=PlanChanged,
    summary="Change plan (admins): an upgrade at once, a downgrade at the reset",
    responses=error_responses(400, 403, 404, 413),
)
def change_plan(body: PlanRequest, admin: Admin, engine: EngineDep) -> PlanChanged:
    change = engine.set_plan(admin.workspace_id, body.plan, by=admin.id)
    return PlanChanged(
        plan=change.plan_id, pending_plan=change.pending_plan_id, effective_at=change.effective_at
    )
