"""Who may call what: every route x {admin, member, no token, bad token, another workspace's
admin}; members see only their own runs and consumption; and every status a route really answered
is one the OpenAPI schema declares, with the body's fields the schema's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from stripe_fakes import Shop

from spojit_engine import Engine
from spojit_engine.metering.store.usage import UsageRow, record_usage

MEMBER, ADMIN, OPEN = "member", "admin", "open"


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


# (method, path, JSON body, who may call it). OPEN routes take no member token at all.
ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/v1/usage", None, MEMBER),
    ("GET", "/api/v1/usage/breakdown", None, MEMBER),
    ("GET", "/api/v1/usage/timeline", None, MEMBER),
    ("GET", "/api/v1/executions", None, MEMBER),
    ("GET", "/api/v1/plans", None, MEMBER),
    ("GET", "/api/v1/packs", None, MEMBER),
    ("POST", "/api/v1/topups", {"pack": "small"}, ADMIN),
    ("GET", "/api/v1/topups", None, ADMIN),
    ("PUT", "/api/v1/plan", {"plan": "starter"}, ADMIN),
    ("POST", "/api/v1/grants", {"amount": "5", "reason": "authz matrix"}, ADMIN),
    ("GET", "/api/v1/grants", None, ADMIN),
    ("GET", "/api/v1/members", None, ADMIN),
    ("GET", "/api/v1/deployments", None, MEMBER),
    ("POST", "/webhooks/stripe", {"id": "evt_unsigned"}, OPEN),
]
CALLERS = ("admin", "member", "no token", "bad token", "other admin")
# Workflow webhooks (POST /hooks/{workflow}) authenticate with their own secret; the guards'
# tests (tests/web/test_hooks*.py) own their matrix. The signed-in pages (/billing, /executions,
# /login) are not in the API schema; tests/web/test_pages.py and test_browser.py cover them.
# Removing a member or rotating a token acts on one member (an id in the path, gone once removed):
# tests/web/test_members.py owns that matrix.
ELSEWHERE = ("/hooks/", "/api/v1/members/")


def ours(path: str) -> bool:
    return not path.startswith(ELSEWHERE)


def token_of(caller: str, acme: Shop, beta: Shop) -> str | None:
    return {
        "admin": acme.admin.token,
        "member": acme.member.token,
        "no token": None,
        "bad token": "spj_not-a-token",
        "other admin": beta.admin.token,
    }[caller]


def expected_status(method: str, path: str, who: str, caller: str) -> int:
    if who == OPEN:  # the Stripe webhook: its signature is the credential, and there is none
        return 400
    if caller in ("no token", "bad token"):
        return 401
    if who == ADMIN and caller == "member":
        return 403
    return 201 if method == "POST" else 200


def test_every_route_is_in_the_matrix(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    served = {
        (m.upper(), path) for path, ops in openapi["paths"].items() if ours(path) for m in ops
    }
    assert served == {(m, p.split("?")[0]) for m, p, _, _ in ROUTES}


def test_the_authorization_matrix(
    client: TestClient, web_engine: Engine, acme: Shop, beta: Shop
) -> None:
    openapi = client.get("/openapi.json").json()
    for method, path, body, who in ROUTES:
        for caller in CALLERS:
            response = client.request(
                method, path, json=body, headers=bearer(token_of(caller, acme, beta))
            )
            wanted = expected_status(method, path, who, caller)
            assert response.status_code == wanted, (method, path, caller, response.text)
            assert_declared(openapi, method, path.split("?")[0], response)
            if response.status_code >= 400 and "json" in response.headers["content-type"]:
                error = response.json()
                assert set(error) == {"error", "code"} and error["error"].endswith(".")
    # Another workspace's admin acted on their own workspace, never on acme's.
    assert [o.pack for o in web_engine.orders(beta.workspace_id)] == ["small"]
    assert [o.pack for o in web_engine.orders(acme.workspace_id)] == ["small"]
    assert web_engine.balance(beta.workspace_id).pending_plan is None  # free -> starter: upgrade
    assert web_engine.balance(beta.workspace_id).plan == "starter"


def test_a_token_only_ever_reads_its_own_workspace(
    client: TestClient, acme: Shop, beta: Shop
) -> None:
    for shop in (acme, beta):
        for token in (shop.admin.token, shop.member.token):
            card = client.get("/api/v1/usage", headers=bearer(token)).json()
            assert card["workspace_id"] == shop.workspace_id
    assert client.get("/api/v1/usage", headers={"Authorization": "Basic abc"}).status_code == 401


def usage_row(shop: Shop, run: str, member_id: str | None, node: str, credits_ucr: int) -> UsageRow:
    return UsageRow(
        key=f"{run}/{node}/1",
        workspace_id=shop.workspace_id,
        workflow="leads",
        flow_run_id=run,
        task_run_id=f"{run}-{node}",
        attempt=1,
        node_name=node,
        node_type="connector",
        mode="agent",
        models="gpt-4o-mini",
        tokens_in=10,
        tokens_out=20,
        tokens_cached=0,
        llm_calls=1,
        credits_ucr=credits_ucr,
        member_id=member_id,
        test_run=False,
        status="ok",
        error=None,
        created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=len(run) + len(node)),
    )


def test_members_see_only_their_own_executions_and_consumption(
    client: TestClient, web_engine: Engine, acme: Shop, beta: Shop
) -> None:
    rows = [
        usage_row(acme, "run-admin", acme.admin.id, "lookup", 1_500_000),
        usage_row(acme, "run-admin", acme.admin.id, "summarise", 250_000),
        usage_row(acme, "run-member", acme.member.id, "lookup", 2_000_000),
        usage_row(beta, "run-beta", beta.admin.id, "lookup", 3_000_000),
    ]
    for row in rows:
        record_usage(web_engine.sa_engine, row)
    web_engine.debit(acme.workspace_id, Decimal("2"), key="d-member", member_id=acme.member.id,
                     workflow="leads", node_type="connector.agent")  # fmt: skip
    web_engine.debit(acme.workspace_id, Decimal("1.75"), key="d-admin", member_id=acme.admin.id,
                     workflow="leads", node_type="connector.agent")  # fmt: skip

    def runs(token: str | None) -> dict[str, tuple[str, int, str | None]]:
        response = client.get("/api/v1/executions", headers=bearer(token))
        assert response.status_code == 200
        return {
            r["flow_run_id"]: (r["credits"], r["node_calls"], r["member"]) for r in response.json()
        }

    assert runs(acme.member.token) == {"run-member": ("2.000000", 1, "member@acme.io")}
    assert runs(acme.admin.token) == {
        "run-member": ("2.000000", 1, "member@acme.io"),
        "run-admin": ("1.750000", 2, "admin@acme.io"),
    }
    assert runs(beta.admin.token) == {"run-beta": ("3.000000", 1, "admin@beta.io")}

    def consumption(token: str | None) -> list[tuple[str | None, str]]:
        body = client.get("/api/v1/usage/breakdown?by=member", headers=bearer(token)).json()
        return sorted((r["member"], r["credits"]) for r in body["rows"])

    assert consumption(acme.member.token) == [(acme.member.id, "2.000000")]
    assert consumption(acme.admin.token) == sorted(
        [(acme.admin.id, "1.750000"), (acme.member.id, "2.000000")]
    )
    assert consumption(beta.admin.token) == []


# -- the OpenAPI schema says what the routes do ---------------------------------------------------


def assert_declared(openapi: dict[str, Any], method: str, path: str, response: Any) -> None:
    operation = openapi["paths"][path][method.lower()]
    responses = operation["responses"]
    status = str(response.status_code)
    declared = status in responses or (status.startswith("4") and "4XX" in responses)
    assert declared, (method, path, status, sorted(responses))
    if not status.startswith("2") or "json" not in response.headers.get("content-type", ""):
        return
    schema = responses[status]["content"]["application/json"]["schema"]
    body = response.json()
    if schema.get("type") == "array":
        schema, items = schema["items"], body
    else:
        items = [body]
    properties = resolve(openapi, schema)["properties"]
    for item in items:
        assert set(item) == set(properties), (method, path)


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(openapi["components"]["schemas"][ref.rsplit("/", 1)[1]])


def test_the_schema_declares_bearer_auth_and_no_422(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in openapi["paths"].items():
        if not ours(path):
            continue
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)  # ours answer 400
            assert ("security" in operation) == path.startswith("/api/v1/"), (method, path)
    topups = openapi["paths"]["/api/v1/topups"]["post"]
    assert "201" in topups["responses"] and "403" in topups["responses"]
    credits = openapi["components"]["schemas"]["UsageCard"]["properties"]["remaining"]
    assert credits["type"] == "string" and credits["pattern"]


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_the_docs_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200
