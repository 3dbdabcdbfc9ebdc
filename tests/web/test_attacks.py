"""Each attack the operations issue tried against ``spojit serve``, as a regression test on SQLite
and PostgreSQL: every one answers a 4xx JSON error and writes nothing (a verified but malformed
Stripe event is only recorded among the rejects, for the operator)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))

from stripe_fakes import FakeStripe, billing_settings, event, open_shop, session_event, signed

from spojit_engine import Engine
from spojit_engine.billing import schema as billing_schema
from spojit_engine.guards.schema import guard_states, webhook_queue
from spojit_engine.metering.store import schema
from spojit_engine.web.app import create_app

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_NUMBER = b'{"n": ' + b"7" * 4301 + b"}"
TABLES = (
    schema.entries,
    schema.grants,
    webhook_queue,
    guard_states,
    billing_schema.stripe_events,
    billing_schema.topup_orders,
)


class Server:
    """A shop with a webhook, served by the real app; ``written()`` counts every row that
    matters, so a test can say nothing changed."""

    def __init__(self, engine: Engine, fake: FakeStripe) -> None:
        self.engine = engine
        self.shop = open_shop(engine, fake)
        self.secret = engine.guard.hooks.create(
            "leads",
            workflow="lead_enrichment",
            workspace_id=self.shop.workspace_id,
            deployment_id="00000000-0000-0000-0000-000000000000",
        )
        self.client = TestClient(create_app(engine))

    def written(self) -> dict[str, int]:
        with self.engine.sa_engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in TABLES
            }

    def rejects(self) -> list[Any]:
        with self.engine.sa_engine.connect() as conn:
            return list(conn.execute(select(billing_schema.stripe_rejects)).all())

    def hook(self, name: str, body: bytes, secret: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return self.client.post(f"/hooks/{name}", content=body, headers=headers)

    def stripe(self, body: bytes, header: str) -> Any:
        return self.client.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
        )


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    fake = FakeStripe()
    engine = Engine(database_url, settings=billing_settings(tmp_path), stripe_http_client=fake)
    yield Server(engine, fake)
    engine.verify()
    engine.close()


def refused(answer: Any, status: int) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert answer.status_code == status, body
    assert set(body) == {"error", "code"} and body["error"].endswith("."), body
    return body


def test_a_hook_name_with_a_nul_never_reaches_the_database(server: Server) -> None:
    before = server.written()
    for name in ("a%00", "a%00b", "%00", "a%0Ab", "x" * 300, "-dash", "a b"):
        refused(server.hook(name, b"{}"), 401)
        refused(server.hook(name, b"{}", secret=server.secret), 401)
    assert server.written() == before


def test_unknown_hook_and_wrong_secret_answer_alike(server: Server) -> None:
    unknown = server.hook("nope", b"{}", secret="whk_guess")
    wrong = server.hook("leads", b"{}", secret="whk_guess")
    missing = server.hook("leads", b"{}")
    assert unknown.status_code == wrong.status_code == missing.status_code == 401
    assert unknown.json() == wrong.json() == missing.json()
    assert unknown.headers["content-length"] == wrong.headers["content-length"]


@pytest.mark.parametrize("body", [DEEP, HUGE_NUMBER], ids=["100k-deep", "4301-digits"])
def test_hostile_json_is_a_400_everywhere_a_body_is_read(server: Server, body: bytes) -> None:
    before = server.written()
    refused(server.hook("leads", body, secret=server.secret), 400)
    admin = {"Authorization": f"Bearer {server.shop.admin.token}"}
    for method, path in (("POST", "/api/v1/topups"), ("PUT", "/api/v1/plan")):
        answer = server.client.request(
            method, path, content=body, headers={**admin, "Content-Type": "application/json"}
        )
        refused(answer, 400)
    payload = body.decode()
    import stripe

    header = stripe.WebhookSignature.generate_signature_header(payload, "whsec_spojit_test")
    refused(server.stripe(body, header), 400)
    assert server.written() == before
    assert len(server.rejects()) == 1  # the signed one: Stripe's, so kept for the operator


def _session_object(server: Server) -> dict[str, Any]:
    started = server.engine.topup(server.shop.workspace_id, "small", by=server.shop.admin.id)
    return server.shop.stripe.pay(started.session_id)


def malformed_events(session: dict[str, Any]) -> dict[str, Any]:
    """The nine shapes the issue tried, each validly signed."""
    good = session_event("evt_ok", "checkout.session.completed", session)
    no_data = {k: v for k, v in good.items() if k != "data"}
    no_object_id = event("evt_3", "checkout.session.completed", {"object": "checkout.session"})
    bad_amount = event("evt_4", "checkout.session.completed", {**session, "amount_total": "abc"})
    no_event_id = {k: v for k, v in good.items() if k != "id"}
    nested: Any = {}
    for _ in range(200):
        nested = {"x": nested}
    return {
        "array": [good],
        "null": None,
        "no data": no_data,
        "object without id": no_object_id,
        "amount_total abc": bad_amount,
        "no event id": no_event_id,
        "NUL in id": {**good, "id": "evt_\x00"},
        "256-char id": {**good, "id": "evt_" + "x" * 252},
        "deep nesting": {**good, "data": {"object": {**session, "metadata": nested}}},
    }


def test_signed_but_malformed_stripe_events_are_400_and_recorded(server: Server) -> None:
    shapes = malformed_events(_session_object(server))
    before = server.written()
    for shape, evt in shapes.items():
        body, header = signed(evt)
        answer = server.stripe(body, header)
        assert answer.status_code == 400, (shape, answer.json())
        refused(answer, 400)
    assert server.written() == before
    rejects = server.rejects()
    assert len(rejects) == len(shapes) == 9
    assert all(r.reason and len(r.body_sha256) == 64 for r in rejects)


def test_an_unsigned_or_wrongly_signed_event_is_400_and_not_kept(server: Server) -> None:
    body, _ = signed(event("evt_x", "checkout.session.completed", {"id": "cs_x"}))
    _, wrong = signed({"id": "other"})
    for header in (wrong, "t=1,v1=00", "\x00"):
        refused(server.stripe(body, header), 400)
    refused(server.client.post("/webhooks/stripe", content=body), 400)
    assert server.rejects() == []


def test_well_formed_but_irrelevant_events_are_200_ignored(server: Server) -> None:
    for evt in (
        event("evt_u1", "customer.created", {"id": "cus_1", "object": "customer"}),
        event("evt_u2", "checkout.session.completed", {"id": "cs_not_ours"}),
        event("evt_u3", "made.up.type", {"id": "x_1"}),
    ):
        body, header = signed(evt)
        answer = server.stripe(body, header)
        assert answer.status_code == 200 and answer.json()["outcome"] == "ignored", answer.json()
    assert server.rejects() == []


def test_an_underpaid_session_grants_what_it_paid_for_and_refunds_follow(server: Server) -> None:
    """Pack ``small``: 500 credits for 1000 cents. Paying 900 buys 450 credits (0.5 per cent);
    a full refund of the 900 takes back exactly those 450."""
    session = _session_object(server)
    ws = server.shop.workspace_id
    before = server.engine.balance(ws).topup_remaining
    body, header = signed(
        session_event("evt_paid", "checkout.session.completed", {**session, "amount_total": 900})
    )
    assert server.stripe(body, header).json()["outcome"] == "granted"
    [order] = server.engine.orders(ws)
    assert order.flagged and order.credits == Decimal("450") and order.amount_cents == 900
    assert order.detail is not None and "paid 9.00 USD for a pack priced 10.00 USD" in order.detail
    assert server.engine.balance(ws).topup_remaining - before == Decimal("450")
    refund = event(
        "evt_refund",
        "charge.refunded",
        {
            "id": "ch_1",
            "object": "charge",
            "amount": 900,
            "amount_refunded": 900,
            "payment_intent": session["payment_intent"],
            "metadata": {"order_id": order.id},
        },
    )
    body, header = signed(refund)
    assert server.stripe(body, header).json()["outcome"] == "clawed_back"
    assert server.engine.balance(ws).topup_remaining == before
    [order] = server.engine.orders(ws)
    assert order.clawed_back == Decimal("450") and order.state == "refunded"


def test_a_session_paid_in_another_currency_or_nothing_grants_nothing(server: Server) -> None:
    for paid in ({"amount_total": 0}, {"currency": "eur"}):
        session = _session_object(server)
        body, header = signed(
            session_event(
                f"evt_{json.dumps(paid)}", "checkout.session.completed", {**session, **paid}
            )
        )
        assert server.stripe(body, header).json()["outcome"] == "failed"
    assert all(
        o.flagged and o.state == "failed" for o in server.engine.orders(server.shop.workspace_id)
    )
    assert server.engine.balance(server.shop.workspace_id).topup_remaining == 0
