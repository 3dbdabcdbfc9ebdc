"""Billing's tables (migration ``0004_billing`` creates them): top-up orders, what Stripe told us
about each payment, and the Stripe events already processed.

Invariants the database enforces: one order per Checkout Session (UNIQUE ``session_id``); one row
per event id; ``0 <= clawed_back_ucr <= credits_ucr``; cents and µcr never negative.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlmodel import Field, SQLModel

from spojit_engine.metering.store.schema import UTCDateTime, column

STRIPE_ID_LENGTH_MAX = 255  # Stripe's ids are shorter; its docs promise at most 255


class TopupOrder(SQLModel, table=True):
    """One attempt to buy one pack: PENDING until Stripe says paid, failed or expired."""

    __tablename__: ClassVar[str] = "topup_orders"
    __table_args__ = (
        CheckConstraint("credits_ucr > 0", name="ck_orders_credits_positive"),
        CheckConstraint("amount_cents >= 0", name="ck_orders_amount_nonneg"),
        CheckConstraint("refunded_cents >= 0", name="ck_orders_refunded_nonneg"),
        CheckConstraint(
            "clawed_back_ucr >= 0 AND clawed_back_ucr <= credits_ucr",
            name="ck_orders_clawed_back_range",
        ),
        Index("ix_orders_workspace_created", "workspace_id", "created_at"),
        Index("ix_orders_payment_intent", "payment_intent_id"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    member_id: str | None = column(String(32), nullable=True)
    pack_id: str = column(String(32))
    credits_ucr: int = column(BigInteger)
    amount_cents: int = column(BigInteger)
    currency: str = column(String(3))
    state: str = column(String(16))
    session_id: str | None = column(String(STRIPE_ID_LENGTH_MAX), nullable=True, unique=True)
    checkout_url: str | None = column(Text, nullable=True)
    payment_intent_id: str | None = column(String(STRIPE_ID_LENGTH_MAX), nullable=True)
    grant_id: int | None = column(Integer, ForeignKey("grants.id"), nullable=True)
    refunded_cents: int = column(BigInteger, default=0)
    dispute_status: str | None = column(String(16), nullable=True)
    clawed_back_ucr: int = column(BigInteger, default=0)
    detail: str | None = column(Text, nullable=True)
    created_at: datetime = column(UTCDateTime())
    updated_at: datetime = column(UTCDateTime())
    # The amount paid was not the price: what was granted follows what was paid (migration 0009).
    flagged: bool = column(Boolean, default=False, server_default=false())


class StripePayment(SQLModel, table=True):
    """What Stripe said about one payment's refunds and dispute, merged monotonically (refunded
    only grows, a dispute only moves forward), kept whether or not its order is known yet: a
    refund may arrive before the Checkout Session that paid it."""

    __tablename__: ClassVar[str] = "stripe_payments"
    __table_args__ = (Index("ix_stripe_payments_order", "order_id"),)

    payment_intent_id: str = Field(sa_column=Column(String(STRIPE_ID_LENGTH_MAX), primary_key=True))
    order_id: str | None = column(String(32), nullable=True)
    charge_id: str | None = column(String(STRIPE_ID_LENGTH_MAX), nullable=True)
    amount_cents: int | None = column(BigInteger, nullable=True)
    refunded_cents: int = column(BigInteger, default=0)
    dispute_id: str | None = column(String(STRIPE_ID_LENGTH_MAX), nullable=True)
    dispute_status: str | None = column(String(16), nullable=True)
    updated_at: datetime = column(UTCDateTime())


class StripeEvent(SQLModel, table=True):
    """A Stripe event already processed; written in the transaction that acted on it."""

    __tablename__: ClassVar[str] = "stripe_events"

    event_id: str = Field(sa_column=Column(String(STRIPE_ID_LENGTH_MAX), primary_key=True))
    type: str = column(String(64))
    order_id: str | None = column(String(32), nullable=True)
    outcome: str = column(String(32))
    detail: str | None = column(Text, nullable=True)
    received_at: datetime = column(UTCDateTime())


class StripeReject(SQLModel, table=True):
    """A correctly signed Stripe event we could not read (answered 400), kept for the operator."""

    __tablename__: ClassVar[str] = "stripe_rejects"
    __table_args__ = (Index("ix_stripe_rejects_received", "received_at"),)

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    event_id: str | None = column(String(STRIPE_ID_LENGTH_MAX), nullable=True)
    type: str | None = column(String(64), nullable=True)
    reason: str = column(Text)
    body_sha256: str = column(String(64))
    received_at: datetime = column(UTCDateTime())


topup_orders = TopupOrder.__table__  # type: ignore[attr-defined]
stripe_payments = StripePayment.__table__  # type: ignore[attr-defined]
stripe_events = StripeEvent.__table__  # type: ignore[attr-defined]
stripe_rejects = StripeReject.__table__  # type: ignore[attr-defined]
