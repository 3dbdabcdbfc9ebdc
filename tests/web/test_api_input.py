"""Bad input over HTTP: a clear 4xx as one JSON sentence, and nothing written anywhere."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from stripe_fakes import FakeStripe, Shop

from spojit_engine import Engine
from spojit_engine.billing import schema as billing_schema
from spojit_engine.metering.store import schema

MIB = 1024 * 1024


def written(engine: Engine) -> tuple[int, ...]:
    tables = (
        schema.entries,
        schema.grants,
        billing_schema.topup_orders,
        billing_schema.stripe_events,
        billing_schema.stripe_payments,
    )
    with engine.sa_engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables
        )


def admin_headers(shop: Shop, content_type: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {shop.admin.token}", "Content-Type": content_type}


BAD_TOPUPS: list[tuple[Any, int, str]] = [
    (json.dumps({"pack": "jumbo"}), 404, "unknown_pack"),
    ('{"pack": "small"', 400, "invalid_json"),
    ("not json at all", 400, "invalid_json"),
    (json.dumps({"pack": 5}), 400, "invalid_input"),
    (json.dumps({"pack": ""}), 400, "invalid_input"),
    (json.dumps({"pack": "small", "credits": "1000000"}), 400, "invalid_input"),
    (json.dumps(["small"]), 400, "invalid_input"),
    ("", 400, "invalid_input"),
    (json.dumps({"pack": "small", "pad": "x" * MIB}), 413, "body_too_large"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_TOPUPS)
def test_a_bad_topup_request_is_refused_and_writes_nothing(
    client: TestClient,
    web_engine: Engine,
    fake_stripe: FakeStripe,
    acme: Shop,
    body: str,
    status: int,
    code: str,
) -> None:
    before = written(web_engine)
    response = client.post("/api/v1/topups", content=body, headers=admin_headers(acme))
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    assert error["error"].endswith(".") and "\n" not in error["error"]
    assert written(web_engine) == before and fake_stripe.requests == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps({"plan": "gold"}), 404),
        ('{"plan": ', 400),
        (json.dumps({"plan": None}), 400),
        (json.dumps({"plan": "pro", "pad": "x" * (MIB + 1)}), 413),
    ],
)
def test_a_bad_plan_change_is_refused_and_changes_nothing(
    client: TestClient, web_engine: Engine, acme: Shop, body: str, status: int
) -> None:
    before = written(web_engine)
    response = client.put("/api/v1/plan", content=body, headers=admin_headers(acme))
    assert response.status_code == status, response.text
    assert web_engine.balance(acme.workspace_id).plan == "free"
    assert written(web_engine) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/usage/breakdown?by=colour",
        "/api/v1/executions?limit=0",
        "/api/v1/executions?limit=501",
        "/api/v1/executions?limit=many",
        "/api/v1/topups?limit=-1",
    ],
)
def test_bad_query_parameters_are_a_400(client: TestClient, acme: Shop, path: str) -> None:
    response = client.get(path, headers=admin_headers(acme))
    assert response.status_code == 400, response.text
    assert response.json()["error"].endswith(".")


def test_bad_webhooks_are_refused_before_anything_is_read(
    client: TestClient, web_engine: Engine
) -> None:
    before = written(web_engine)
    huge = client.post(
        "/webhooks/stripe",
        content=b"{" + b" " * (MIB + 1) + b"}",
        headers={"Stripe-Signature": "t=1"},
    )
    assert (huge.status_code, huge.json()["code"]) == (413, "body_too_large")
    unsigned = client.post("/webhooks/stripe", content=b"{}")
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "invalid_signature")
    forged = client.post(
        "/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert forged.status_code == 400 and "No signatures found" in forged.json()["error"]
    assert written(web_engine) == before


def test_a_success_redirect_with_a_bad_session_id_is_a_400_page(client: TestClient) -> None:
    response = client.get("/billing/success", params={"session_id": "'; DROP TABLE grants; --"})
    assert response.status_code == 400
    assert "Checkout Session id" in response.text and "<script" not in response.text
    missing = client.get("/billing/success")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_input"
