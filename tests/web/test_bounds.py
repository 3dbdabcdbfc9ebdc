"""The server's bounds, stated and kept on SQLite and PostgreSQL alike: a paging or numeric query
parameter past its bound is a 400 with a sentence (never the database's overflow as a 500), the
OpenAPI schema states each bound as the app's settings set it, text a database cannot hold is
refused at the surface, and the small courtesies: ``/`` leads to the pages, a 405 says which
methods the route takes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from stripe_fakes import FakeStripe, Shop, billing_settings, open_shop

from spojit_engine import Engine
from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput
from spojit_engine.guards.schema import webhook_queue
from spojit_engine.web.app import create_app
from spojit_engine.web.pages.signin import COOKIE

FACTOR = "The factor must be a number above 1 and at most 1000."
BEYOND_INT64 = 2**63  # 9223372036854775808: SQLite's OverflowError, PostgreSQL's bigint range


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Shop]]:
    fake = FakeStripe()
    settings = billing_settings(
        tmp_path, page_size_max=50, timeline_days_max=90, public_url="http://testserver"
    )
    engine = Engine(database_url, settings=settings, stripe_http_client=fake)
    shop = open_shop(engine, fake)
    with TestClient(create_app(engine)) as client:
        yield client, shop
    engine.close()


def headers(shop: Shop) -> dict[str, str]:
    return {"Authorization": f"Bearer {shop.admin.token}"}


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (f"/api/v1/executions?offset={BEYOND_INT64}", "offset must be 0-10000000"),
        ("/api/v1/executions?offset=10000001", "offset must be 0-10000000"),
        (f"/api/v1/executions?limit={BEYOND_INT64}", "limit must be 1-50"),
        ("/api/v1/executions?limit=51", "limit must be 1-50"),
        ("/api/v1/topups?limit=51", "limit must be 1-50"),
        (f"/api/v1/topups?limit={BEYOND_INT64}", "limit must be 1-50"),
        (f"/api/v1/usage/timeline?days={BEYOND_INT64}", "days must be 1-90"),
        ("/api/v1/usage/timeline?days=728042", "days must be 1-90"),
        ("/api/v1/usage/breakdown?by=workflow,colour", "by"),
    ],
)
def test_a_parameter_past_its_bound_is_a_400_on_both_databases(
    served: tuple[TestClient, Shop], path: str, says: str
) -> None:
    client, shop = served
    answer = client.get(path, headers=headers(shop))
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"] and answer.json()["error"].endswith(".")


def test_the_schema_states_the_bounds_the_server_keeps(served: tuple[TestClient, Shop]) -> None:
    client, shop = served
    schema = client.get("/openapi.json").json()

    def parameter(path: str, name: str) -> dict[str, Any]:
        found = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
        return dict(found[0]["schema"])

    assert parameter("/api/v1/executions", "limit")["maximum"] == 50
    assert parameter("/api/v1/executions", "offset")["maximum"] == 10_000_000
    assert parameter("/api/v1/topups", "limit")["maximum"] == 50
    days_schema = parameter("/api/v1/usage/timeline", "days")["anyOf"]
    (days,) = [b for b in days_schema if b["type"] == "integer"]
    assert days == {"type": "integer", "minimum": 1, "maximum": 90}
    assert "x-spojit" not in str(schema)
    for edge in (50, 10_000_000):  # the bounds themselves are accepted
        assert (
            client.get(f"/api/v1/executions?offset={edge}", headers=headers(shop)).status_code
            == 200
        )
    assert client.get("/api/v1/usage/timeline?days=90", headers=headers(shop)).status_code == 200

    grant = schema["components"]["schemas"]["GrantRequest"]["properties"]
    (expires,) = [b for b in grant["expires_at"]["anyOf"] if b.get("format") == "date-time"]
    today = date.today()
    promised = [today + timedelta(days=n) for n in (2, 40, 400)]
    assert all(re.match(expires["pattern"], f"{d}T00:00:00Z") for d in promised)
    assert not any(
        re.match(expires["pattern"], f"{d}T23:59:59Z") for d in (today, date(2000, 1, 1))
    )
    assert all(
        re.fullmatch(grant["amount"]["pattern"], a) for a in ("0.000001", "50", "1000000000")
    )
    assert not any(
        re.fullmatch(grant["amount"]["pattern"], a) for a in ("0", "0.000000", "1000000001")
    )


def test_a_grant_the_schema_calls_valid_is_accepted(served: tuple[TestClient, Shop]) -> None:
    client, shop = served
    later = (date.today() + timedelta(days=2)).isoformat()
    body = {
        "amount": "0.000001",
        "reason": "a  refund\u3000for ticket 4711",
        "expires_at": f"{later}T00:00:00-23:59",
    }
    answer = client.post("/api/v1/grants", json=body, headers=headers(shop))
    assert answer.status_code == 201, answer.text
    assert answer.json()["grant"]["reason"] == "a refund for ticket 4711"
    for reason in ("\u200b", "tab\there", "ok\u202eevil"):
        refused = client.post(
            "/api/v1/grants", json={**body, "reason": reason}, headers=headers(shop)
        )
        assert refused.status_code == 400, reason


@pytest.mark.parametrize(
    "text",
    ["w" * 501, "leads\x00", "le\ud800ads", "tab\tin", "\u200b"],
)
def test_text_a_database_cannot_hold_is_refused_by_the_engine_on_both_databases(
    engine: Engine, text: str
) -> None:
    ws = engine.create_workspace("acme").id
    for call in (
        lambda: engine.debit(ws, "1", key="k1", workflow=text),
        lambda: engine.debit(ws, "1", key="k2", node_type=text),
        lambda: engine.hold(ws, "1", key="k3", workflow=text),
        lambda: engine.set_workflow_budget(ws, text, max_credits_per_run="5"),
        lambda: engine.grant(ws, "1", kind="promo", key="k4", reason=text),
    ):
        with pytest.raises(InvalidInput) as refused:
            call()
        assert str(refused.value).endswith(".")
    assert engine.balance(ws).consumed == 0 and engine.grants(ws)[-1].kind == "allowance"
    with pytest.raises(InvalidInput):
        engine.debit(ws, "1", key="k\x00")
    with pytest.raises(InvalidInput):
        engine.execution(ws, "run\x00")
    with pytest.raises(InvalidInput):
        engine.workspace_id("acme\ud800")
    with pytest.raises(InvalidInput, match="1-128 characters"):
        engine.debit(ws, "1", key="k6", workflow="w" * 129)
    assert engine.debit(ws, "1", key="k5", workflow="w" * 128, node_type="n" * 64).amount == -1


def test_the_address_of_the_server_leads_to_the_pages(client: TestClient) -> None:
    home = client.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/billing")
    assert client.get("/").url.path == "/billing"


def test_a_405_names_the_methods_the_route_takes(client: TestClient) -> None:
    answer = client.delete("/api/v1/usage")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
    assert answer.json()["error"] == "Method not allowed on this route."
    hook = client.get("/hooks/leads")
    assert hook.status_code == 405 and hook.headers["allow"] == "POST"


def test_a_hook_body_with_a_lone_surrogate_or_a_nul_is_refused_at_the_door(
    web_engine: Engine,
) -> None:
    ws = web_engine.create_workspace("acme")
    secret = web_engine.guard.hooks.create(
        "leads", workflow="leads", workspace_id=ws.id,
        deployment_id="00000000-0000-0000-0000-000000000000",
    )  # fmt: skip
    with TestClient(create_app(web_engine)) as client:
        for body in (b'{"x":"\\ud800"}', b'{"x":["\\udfff"]}', b'{"\\u0000":1}'):
            answer = client.post("/hooks/leads", content=body, headers={"X-Spojit-Secret": secret})
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"].startswith("The JSON body holds")
        paired = client.post("/hooks/leads", content=b'{"x":"\\ud83d\\ude00"}',
                             headers={"X-Spojit-Secret": secret})  # fmt: skip
        assert paired.status_code == 202  # an emoji, escaped as a surrogate pair, is text
    with read_transaction(web_engine.sa_engine) as conn:  # only the emoji got in (any state)
        kept = conn.execute(select(func.count()).select_from(webhook_queue)).scalar_one()
    assert kept == 1


def test_api_bodies_with_a_lone_surrogate_are_refused(client: TestClient, acme: Shop) -> None:
    answer = client.post(
        "/api/v1/grants",
        content=b'{"amount": "1", "reason": "ok \\ud800"}',
        headers={**headers(acme), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and "lone surrogate" in answer.json()["error"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "run_above", "workflow": "w" * 300, "above": "5"}, "1-128 characters"),
        ({"kind": "regression", "workflow": "leads", "factor": "Infinity", "runs": "5"}, FACTOR),
        ({"kind": "regression", "workflow": "leads", "factor": "NaN", "runs": "5"}, FACTOR),
        ({"kind": "run_above", "workflow": "le\x00ads", "above": "5"}, "U+0000"),
        ({"kind": "run_above", "workflow": "no_such_wf", "above": "5"}, "not run or deployed"),
    ],
)
def test_the_notifications_form_refuses_what_postgresql_would_the_same_on_both(
    served: tuple[TestClient, Shop], fields: dict[str, str], says: str
) -> None:
    client, shop = served
    engine = shop.engine
    engine.debit(shop.workspace_id, "1", key="leads-known", workflow="leads")
    link = engine.login_link(shop.workspace_id, member_id=shop.admin.email)
    assert client.get("/login/" + link.url.rsplit("/", 1)[1]).status_code == 200  # /billing
    csrf = engine.session_member(client.cookies[COOKIE]).csrf_token
    form = {"csrf_token": csrf, "channel": "webhook", "target": "https://93.184.215.14/x", **fields}
    answer = client.post("/settings/notifications", data=form)
    assert answer.status_code == 400 and says in answer.text
    assert engine.notification_rules(shop.workspace_id) == []
