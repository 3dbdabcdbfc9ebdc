"""Buying a pack: the exact Checkout Session Stripe is asked for, and what is written (or not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from settable_clock import SettableClock
from sqlalchemy import func, select
from stripe_fakes import (
    API_BASE,
    API_KEY,
    PUBLIC_URL,
    FakeStripe,
    Shop,
    billing_settings,
    open_shop,
)

from spojit_engine import Engine
from spojit_engine.billing import schema
from spojit_engine.errors import (
    AdminRequired,
    BillingUnavailable,
    PaymentProviderError,
    UnknownPack,
    UnknownWorkspace,
)


def order_count(engine: Engine) -> int:
    with engine.sa_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.topup_orders)).scalar_one())


def test_the_session_carries_exactly_the_pack_our_ids_and_one_idempotency_key(
    sqlite_billing_engine: Engine, fake_stripe: FakeStripe
) -> None:
    shop = open_shop(sqlite_billing_engine, fake_stripe)
    started = shop.engine.topup(shop.workspace_id, "medium", by=shop.admin.id)

    [request] = fake_stripe.requests
    assert (request.method, request.url) == ("post", f"{API_BASE}/v1/checkout/sessions")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Idempotency-Key"] == f"spojit-checkout-{started.order_id}"
    ids = {
        "order_id": started.order_id,
        "workspace_id": shop.workspace_id,
        "pack": "medium",
        "credits": "2500.000000",
    }
    assert request.form == {
        "mode": "payment",
        "client_reference_id": started.order_id,
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "4500",
        "line_items[0][price_data][product_data][name]": "2,500 credits (spojit top-up)",
        **{f"metadata[{k}]": v for k, v in ids.items()},
        **{f"payment_intent_data[metadata][{k}]": v for k, v in ids.items()},
        "success_url": f"{PUBLIC_URL}/billing/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{PUBLIC_URL}/billing?checkout=cancelled",
    }
    assert started.session_id == "cs_test_0001"
    assert started.checkout_url == "https://checkout.stripe.test/c/pay/cs_test_0001"

    [order] = shop.engine.orders(shop.workspace_id)
    assert (order.id, order.state, order.pack, order.credits) == (
        started.order_id,
        "pending",
        "medium",
        Decimal("2500"),
    )
    assert (order.amount_cents, order.currency, order.session_id, order.member_id) == (
        4500,
        "usd",
        "cs_test_0001",
        shop.admin.id,
    )
    assert shop.engine.balance(shop.workspace_id).topup_remaining == 0  # nothing until paid


def test_each_order_is_its_own_session(shop: Shop) -> None:
    first = shop.engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    second = shop.engine.topup(shop.workspace_id, "small", by=None)  # the local operator
    assert first.order_id != second.order_id and first.session_id != second.session_id
    keys = [r.headers["Idempotency-Key"] for r in shop.stripe.requests]
    assert len(set(keys)) == 2
    assert [o.id for o in shop.engine.orders(shop.workspace_id)] == [
        second.order_id,
        first.order_id,
    ]


def test_a_new_order_once_the_open_one_is_old_or_being_paid(
    sqlite_engine: Engine, tmp_path: Path, fake_stripe: FakeStripe
) -> None:
    clock = SettableClock(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    settings = billing_settings(tmp_path, topup_checkout_reuse_minutes=30)
    engine = Engine(sqlite_engine.database_url, settings=settings, clock=clock,
                    stripe_http_client=fake_stripe)  # fmt: skip
    shop = open_shop(engine, fake_stripe)
    first = engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    clock.now += timedelta(minutes=29)
    assert engine.topup(shop.workspace_id, "small", by=shop.admin.id) == first
    clock.now += timedelta(minutes=2)  # past the window: its Checkout may be about to expire
    later = engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    assert later.order_id != first.order_id
    with engine.sa_engine.begin() as conn:  # Stripe reported a payment begun on it
        conn.execute(
            schema.topup_orders.update()
            .where(schema.topup_orders.c.id == later.order_id)
            .values(payment_intent_id="pi_async")
        )
    assert engine.topup(shop.workspace_id, "small", by=shop.admin.id).order_id not in {
        first.order_id,
        later.order_id,
    }
    engine.close()


@pytest.mark.parametrize(
    ("who", "pack", "error"),
    [
        ("member", "small", AdminRequired),
        ("other_admin", "small", AdminRequired),
        ("admin", "jumbo", UnknownPack),
        ("member", "jumbo", AdminRequired),  # who may act is checked before what they ask
    ],
)
def test_refused_purchases_write_nothing_and_never_reach_stripe(
    sqlite_billing_engine: Engine, fake_stripe: FakeStripe, who: str, pack: str, error: type
) -> None:
    shop = open_shop(sqlite_billing_engine, fake_stripe)
    other = open_shop(sqlite_billing_engine, fake_stripe, name="beta")
    actor = {"member": shop.member, "admin": shop.admin, "other_admin": other.admin}[who]
    with pytest.raises(error) as refused:
        shop.engine.topup(shop.workspace_id, pack, by=actor.id)
    assert str(refused.value).endswith(".") and "\n" not in str(refused.value)
    assert order_count(shop.engine) == 0 and fake_stripe.requests == []
    with pytest.raises(UnknownWorkspace):
        shop.engine.topup("ws_nope", "small", by=None)


def test_without_an_api_key_billing_is_unavailable_and_nothing_is_written(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = Engine(
        sqlite_engine.database_url, settings=billing_settings(tmp_path, stripe_api_key=None)
    )
    ws = engine.create_workspace("acme")
    with pytest.raises(BillingUnavailable, match="SPOJIT_STRIPE_API_KEY"):
        engine.topup(ws.id, "small", by=None)
    assert order_count(engine) == 0
    engine.close()


def test_a_stripe_error_fails_the_order_with_stripes_reason(shop: Shop) -> None:
    shop.stripe.fail_with = (400, "Invalid currency: usd.\nTry again")
    with pytest.raises(PaymentProviderError) as refused:
        shop.engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    message = str(refused.value)
    assert message == (
        "Stripe could not create a Checkout Session (HTTP 400): Invalid currency: usd. Try again."
    )
    [order] = shop.engine.orders(shop.workspace_id)
    assert (order.state, order.session_id, order.detail) == ("failed", None, message)
    shop.engine.verify(shop.workspace_id)


def test_the_engine_owns_one_stripe_client_built_on_first_use(shop: Shop) -> None:
    assert "billing" not in vars(shop.engine)  # nothing built before it is needed
    shop.engine.topup(shop.workspace_id, "small", by=None)
    client = shop.engine.billing.client
    shop.engine.topup(shop.workspace_id, "large", by=None)
    assert shop.engine.billing.client is client
