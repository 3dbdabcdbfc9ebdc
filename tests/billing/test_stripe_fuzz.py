"""Hypothesis fuzzes the Stripe webhook with *signed* random events — random JSON, and real
session, refund and dispute events with random values swapped into their fields. Whatever
arrives, the answer is a result or a 4xx error (never an exception that would be a 500), and the
ledger still proves itself (``verify``). Bounded; the number of events tried is printed."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe_fakes import Shop, event, refund_event, session_event, signed

from spojit_engine import Engine
from spojit_engine.billing.stripe_events import HANDLED_EVENTS
from spojit_engine.errors import SpojitError, http_status

EXAMPLES = int(os.environ.get("SPOJIT_FUZZ_EXAMPLES", "15")) * 4  # 60 by default
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
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
        event_id=st.text(min_size=0, max_size=300),
        whole=json_values,
        how=st.sampled_from(["field", "type", "id", "whole"]),
    )
    def deliver(
        base: dict[str, Any], field: str, value: Any, kind: str, event_id: str, whole: Any, how: str
    ) -> None:
        evt: Any = {**base, "data": {"object": dict(base["data"]["object"])}}
        if how == "field":
            evt["data"]["object"][field] = value
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
