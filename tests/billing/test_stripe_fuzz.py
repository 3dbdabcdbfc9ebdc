"""Hypothesis fuzzes the Stripe webhook with *signed* random events — random JSON, and real
session, refund and dispute events with random values swapped into their fields, text included
that is valid JSON but not Unicode (lone surrogates, ``"\\ud800"``) and NULs, in the order id,
``client_reference_id``, a refund's metadata, the event's id. Whatever arrives, the answer is a
result or a 4xx error (never an exception that would be a 500), and the ledger still proves
itself (``verify``). Bounded; the number of events tried is printed."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe_fakes import Shop, event, refund_event, session_event, signed

from spojit_engine import Engine
from spojit_engine.billing.stripe_events import HANDLED_EVENTS
from spojit_engine.errors import MalformedEvent, SpojitError, http_status

EXAMPLES = int(os.environ.get("SPOJIT_FUZZ_EXAMPLES", "15")) * 4  # 60 by default
# Any code point, lone surrogates and NUL included (JSON escapes them: "\ud800", "\u0000").
any_text = st.text(st.characters(exclude_categories=()), max_size=300)
lone_surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ids = st.one_of(
    st.text(max_size=300), st.builds(lambda a, b: a + b, st.text(max_size=20), lone_surrogate)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
    ids,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = ("id", "amount_total", "currency", "payment_status", "payment_intent", "metadata",
          "amount", "amount_refunded", "charge", "status", "client_reference_id")  # fmt: skip
ORDER_FIELDS = ("order_id", "workspace_id", "pack")  # our metadata, on sessions and charges


def poison(obj: dict[str, Any], field: str, value: str) -> None:
    """Put ``value`` in the object's ``field`` of our metadata (``client_reference_id`` itself
    on a session), under an id we do not know, so the order is looked up by that value."""
    obj["id"] = obj["id"][:3] + "unknown"
    if field == "client_reference_id":
        obj.pop("metadata", None)
        obj["client_reference_id"] = value
    else:
        obj["metadata"] = {**(obj.get("metadata") or {}), field: value}


def test_signed_events_holding_lone_surrogates_are_refused_not_crashed(shop: Shop) -> None:
    engine: Engine = shop.engine
    started = engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    session = shop.stripe.pay(started.session_id)
    refund = refund_event("evt_r", charge="ch_1", payment_intent=session["payment_intent"],
                          amount_cents=1000, refunded_cents=500)  # fmt: skip
    cases = [
        (session_event("evt_s", "checkout.session.completed", session), "order_id"),
        (session_event("evt_c", "checkout.session.completed", session), "client_reference_id"),
        (refund, "order_id"),
    ]
    for evt, field in cases:
        poison(evt["data"]["object"], field, "ord_\ud800")
        body, header = signed(evt)
        with pytest.raises(MalformedEvent, match="lone surrogate"):
            engine.handle_stripe_webhook(body, header)
    odd_id = {**cases[0][0], "id": "evt_\udfff"}
    with pytest.raises(MalformedEvent, match="lone surrogate"):
        engine.handle_stripe_webhook(*signed(odd_id))
    assert engine.orders(shop.workspace_id)[0].state == "pending"
    engine.verify()


def test_signed_random_events_never_break_the_webhook(shop: Shop) -> None:
    engine: Engine = shop.engine
    started = engine.topup(shop.workspace_id, "small", by=shop.admin.id)
    session = shop.stripe.pay(started.session_id)
    real = [
        session_event("evt_s", "checkout.session.completed", session),
        refund_event(
            "evt_r",
            charge="ch_1",
            payment_intent=session["payment_intent"],
            amount_cents=1000,
            refunded_cents=500,
        ),
    ]
    tried: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        base=st.sampled_from(real),
        field=st.sampled_from(FIELDS),
        value=json_values,
        kind=st.sampled_from(HANDLED_EVENTS) | st.text(max_size=70),
        event_id=ids,
        whole=json_values,
        meta=st.sampled_from(ORDER_FIELDS),
        how=st.sampled_from(["field", "type", "id", "whole", "metadata"]),
    )
    def deliver(
        base: dict[str, Any], field: str, value: Any, kind: str, event_id: str, whole: Any,
        meta: str, how: str,
    ) -> None:  # fmt: skip
        evt: Any = {**base, "data": {"object": dict(base["data"]["object"])}}
        if how == "field":
            evt["data"]["object"][field] = value
        elif how == "metadata":  # a signed event naming an order in text no database can hold
            poison(evt["data"]["object"], meta, event_id)
        elif how == "type":
            evt = event(evt["id"], kind, evt["data"]["object"])
        elif how == "id":
            evt["id"] = event_id
        else:
            evt = whole
        body, header = signed(evt)
        try:
            engine.handle_stripe_webhook(body, header)
        except SpojitError as exc:
            assert 400 <= http_status(exc) < 500, (how, exc)
        tried.append(how)

    deliver()
    engine.verify()
    print(f"\nStripe webhook fuzz: {len(tried)} signed events")
    assert len(tried) == EXAMPLES
