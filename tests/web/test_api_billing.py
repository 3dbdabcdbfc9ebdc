"""Buying credits end to end over HTTP, on SQLite and PostgreSQL: an admin creates the Checkout
Session, Stripe's signed webhook lands the credits (once), the success redirect shows them, a
refund claws back its share, plans change as DESIGN §3 says; the ledger verifies throughout."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from stripe_fakes import (
    FakeStripe,
    billing_settings,
    open_shop,
    refund_event,
    session_event,
    signed,
)

from spojit_engine import Engine
from spojit_engine.web.app import create_app


@pytest.fixture
def ledger_client(
    database_url: str, tmp_path: Path, fake_stripe: FakeStripe
) -> Iterator[tuple[TestClient, Engine]]:
    engine = Engine(
        database_url, settings=billing_settings(tmp_path), stripe_http_client=fake_stripe
    )
    with TestClient(create_app(engine)) as client:
        yield client, engine
    engine.close()


def post_event(client: TestClient, event: dict[str, object]) -> dict[str, object]:
    body, signature = signed(event)
    response = client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_buying_credits_from_checkout_to_refund(
    ledger_client: tuple[TestClient, Engine], fake_stripe: FakeStripe
) -> None:
    client, engine = ledger_client
    shop = open_shop(engine, fake_stripe)
    admin = {"Authorization": f"Bearer {shop.admin.token}"}

    packs = client.get("/api/v1/packs", headers=admin).json()
    assert [(p["id"], p["credits"], p["cents_per_credit"]) for p in packs] == [
        ("small", "500.000000", "2.00"),
        ("medium", "2500.000000", "1.80"),
        ("large", "10000.000000", "1.50"),
    ]
    created = client.post("/api/v1/topups", json={"pack": "medium"}, headers=admin)
    assert created.status_code == 201
    checkout = created.json()
    assert set(checkout) == {"order_id", "session_id", "checkout_url"}
    assert checkout["checkout_url"].startswith("https://checkout.stripe.test/")
    [pending] = client.get("/api/v1/topups", headers=admin).json()
    assert (pending["state"], pending["checkout_url"]) == ("pending", checkout["checkout_url"])

    session = fake_stripe.pay(checkout["session_id"], payment_intent="pi_medium")
    completed = session_event("evt_1", "checkout.session.completed", session)
    assert post_event(client, completed)["outcome"] == "granted"
    assert post_event(client, completed)["outcome"] == "duplicate"
    card = client.get("/api/v1/usage", headers=admin).json()
    assert (card["topup_remaining"], card["remaining"]) == ("2500.000000", "2600.000000")

    page = client.get("/billing/success", params={"session_id": checkout["session_id"]})
    assert page.status_code == 200 and "2,500.00 credits were added" in page.text
    assert len([g for g in engine.grants(shop.workspace_id) if g.kind == "topup"]) == 1

    refund = refund_event(
        "evt_2", charge="ch_1", payment_intent="pi_medium", amount_cents=4500, refunded_cents=900
    )
    assert post_event(client, refund)["outcome"] == "clawed_back"
    [order] = client.get("/api/v1/topups", headers=admin).json()
    assert (order["state"], order["refunded_cents"], order["clawed_back"]) == (
        "refunded",
        900,
        "500.000000",  # 900 of 4500 cents is a fifth of 2500 credits
    )
    assert order["checkout_url"] is None
    card = client.get("/api/v1/usage", headers=admin).json()
    assert card["topup_remaining"] == "2000.000000"
    engine.verify(shop.workspace_id)


def test_plan_changes_upgrade_now_and_downgrade_at_the_reset(
    ledger_client: tuple[TestClient, Engine], fake_stripe: FakeStripe
) -> None:
    client, engine = ledger_client
    shop = open_shop(engine, fake_stripe)
    admin = {"Authorization": f"Bearer {shop.admin.token}"}
    engine.debit(shop.workspace_id, Decimal("30"), key="d1")
    up = client.put("/api/v1/plan", json={"plan": "starter"}, headers=admin).json()
    assert (up["plan"], up["pending_plan"]) == ("starter", None)
    card = client.get("/api/v1/usage", headers=admin).json()
    assert card["allowance_remaining"] == "970.000000"  # 1000 less the 30 already taken
    down = client.put("/api/v1/plan", json={"plan": "free"}, headers=admin).json()
    assert (down["plan"], down["pending_plan"]) == ("starter", "free")
    card = client.get("/api/v1/usage", headers=admin).json()
    assert (card["plan"], card["pending_plan"]) == ("starter", "free")
    assert down["effective_at"] == card["resets_at"]
    plans = client.get("/api/v1/plans", headers=admin).json()
    assert [p["id"] for p in plans] == ["free", "starter", "pro", "business"]
    engine.verify(shop.workspace_id)


def test_ten_clicks_at_once_open_one_order_and_one_checkout(
    ledger_client: tuple[TestClient, Engine], fake_stripe: FakeStripe
) -> None:
    client, engine = ledger_client
    shop = open_shop(engine, fake_stripe)
    admin = {"Authorization": f"Bearer {shop.admin.token}"}

    def click(pack: str) -> dict[str, str]:
        with TestClient(client.app) as own:  # a browser tab of its own, at the same time
            answer = own.post("/api/v1/topups", json={"pack": pack}, headers=admin)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(click, ["small"] * 10))
    assert len({(a["order_id"], a["session_id"], a["checkout_url"]) for a in answers}) == 1
    assert len(fake_stripe.sessions) == 1
    assert click("small") == answers[0]  # a repeated click returns the same Checkout
    other_pack = click("medium")
    assert other_pack["order_id"] != answers[0]["order_id"] and len(fake_stripe.sessions) == 2
    orders = client.get("/api/v1/topups", headers=admin).json()
    assert sorted(o["pack"] for o in orders) == ["medium", "small"]
    assert all(o["state"] == "pending" for o in orders)
    engine.verify()
