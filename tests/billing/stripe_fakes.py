"""Stripe without the network: a fake ``stripe.HTTPClient`` that answers like Stripe's API for
Checkout Sessions (and records every request), events as Stripe sends them, and signing with
stripe-python's own ``WebhookSignature.generate_signature_header``."""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from spojit_engine import Engine
from spojit_engine.accounts import MemberRecord
from spojit_engine.settings import Settings

API_KEY = "sk_test_spojit"
WEBHOOK_SECRET = "whsec_spojit_test"
API_BASE = "http://stripe.invalid:12111"
PUBLIC_URL = "https://billing.spojit.test"


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    form: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class FakeStripe(stripe.HTTPClient):
    """Answers ``POST /v1/checkout/sessions`` and ``GET /v1/checkout/sessions/{id}`` like Stripe
    (one session per idempotency key); ``fail_with`` makes the next request an API error."""

    name = "fake"
    requests: list[Request] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    fail_with: tuple[int, str] | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: Any = field(default_factory=threading.Lock)  # Stripe's keys are atomic

    def __post_init__(self) -> None:
        super().__init__()

    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, dict[str, str]]:
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        request = Request(method.lower(), url, dict(headers or {}), form)
        self.requests.append(request)
        if self.fail_with is not None:
            status, message = self.fail_with
            self.fail_with = None
            body = {"error": {"type": "invalid_request_error", "message": message}}
            return json.dumps(body), status, {"request-id": "req_fake"}
        if request.method == "post" and request.path == "/v1/checkout/sessions":
            return self._create(request)
        prefix = "/v1/checkout/sessions/"
        if request.method == "get" and request.path.startswith(prefix):
            found = self.sessions.get(request.path[len(prefix) :])
            if found is None:
                body = {"error": {"type": "invalid_request_error", "message": "No such session"}}
                return json.dumps(body), 404, {}
            return json.dumps(found), 200, {"request-id": "req_fake"}
        return json.dumps({"error": {"message": f"unexpected {method} {url}"}}), 404, {}

    def _create(self, request: Request) -> tuple[str, int, dict[str, str]]:
        with self._lock:
            return self._create_once(request)

    def _create_once(self, request: Request) -> tuple[str, int, dict[str, str]]:
        key = request.headers.get("Idempotency-Key", "")
        if key in self.by_idempotency_key:
            return json.dumps(self.sessions[self.by_idempotency_key[key]]), 200, {}
        session_id = f"cs_test_{next(self._ids):04d}"
        form = request.form
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "currency": form["line_items[0][price_data][currency]"],
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {
                k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")
            },
            "payment_intent": None,
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self.by_idempotency_key[key] = session_id
        return json.dumps(session), 200, {"request-id": "req_fake"}

    def pay(self, session_id: str, payment_intent: str | None = None) -> dict[str, Any]:
        """Stripe's view after the buyer paid: complete, paid, with a payment intent."""
        session = self.sessions[session_id]
        session.update(
            status="complete",
            payment_status="paid",
            payment_intent=payment_intent or f"pi_{session_id[3:]}",
        )
        return dict(session)

    def close(self) -> None:
        pass


def billing_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "stripe_api_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": API_BASE,
        "public_url": PUBLIC_URL,
        "stripe_network_retries_max": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Shop:
    """A workspace with an admin and a member, ready to buy."""

    engine: Engine
    stripe: FakeStripe
    workspace_id: str
    admin: MemberRecord
    member: MemberRecord


def open_shop(engine: Engine, fake: FakeStripe, name: str = "acme", plan: str = "free") -> Shop:
    ws = engine.create_workspace(name, plan=plan)
    admin = engine.add_member(ws.id, f"admin@{name}.io", role="admin")
    member = engine.add_member(ws.id, f"member@{name}.io", role="member")
    return Shop(engine, fake, ws.id, admin, member)


# -- events ---------------------------------------------------------------------------------------


def event(event_id: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def session_event(
    event_id: str,
    event_type: str,
    session: dict[str, Any],
    *,
    payment_status: str | None = None,
    payment_intent: str | None = None,
) -> dict[str, Any]:
    obj = dict(session)
    if payment_status is not None:
        obj["payment_status"] = payment_status
        obj["status"] = "complete" if event_type.endswith(("completed", "succeeded")) else "open"
    if event_type == "checkout.session.expired":
        obj["status"] = "expired"
    if payment_intent is not None:
        obj["payment_intent"] = payment_intent
    return event(event_id, event_type, obj)


def refund_event(
    event_id: str,
    *,
    charge: str,
    payment_intent: str | None,
    amount_cents: int,
    refunded_cents: int,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj = {
        "id": charge,
        "object": "charge",
        "amount": amount_cents,
        "amount_refunded": refunded_cents,
        "refunded": refunded_cents >= amount_cents,
        "payment_intent": payment_intent,
        "metadata": metadata or {},
    }
    return event(event_id, "charge.refunded", obj)


def dispute_event(
    event_id: str,
    event_type: str,
    *,
    dispute: str,
    charge: str,
    payment_intent: str | None,
    status: str,
    amount_cents: int,
) -> dict[str, Any]:
    obj = {
        "id": dispute,
        "object": "dispute",
        "amount": amount_cents,
        "charge": charge,
        "payment_intent": payment_intent,
        "status": status,
        "metadata": {},
    }
    return event(event_id, event_type, obj)


def signed(
    evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, str]:
    """The raw body and its Stripe-Signature header, as Stripe would send them."""
    payload = json.dumps(evt, separators=(",", ":"))
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
    return payload.encode(), header
