"""Optional contract test: when ``SPOJIT_STRIPE_API_BASE`` points at a running stripe-mock
(``docker run -p 12111:12111 stripe/stripe-mock``), the Checkout Session we create must pass its
validation against Stripe's OpenAPI spec. Skipped otherwise: no test talks to the internet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stripe_fakes import billing_settings

from spojit_engine import Engine

API_BASE = os.environ.get("SPOJIT_STRIPE_API_BASE")


@pytest.mark.skipif(not API_BASE, reason="SPOJIT_STRIPE_API_BASE does not point at a stripe-mock")
def test_stripe_mock_accepts_our_checkout_session(sqlite_engine: Engine, tmp_path: Path) -> None:
    settings = billing_settings(
        tmp_path,
        stripe_api_base=API_BASE,
        stripe_api_key=os.environ.get("SPOJIT_STRIPE_API_KEY", "sk_test_123"),
    )
    engine = Engine(sqlite_engine.database_url, settings=settings)
    ws = engine.create_workspace("acme")
    started = engine.topup(ws.id, "medium", by=None)
    assert started.session_id.startswith("cs_") and started.checkout_url.startswith("https://")
    order = engine.fulfil_checkout(started.session_id)  # retrieves the session from the mock
    assert order.state in ("pending", "paid")
    engine.verify()
    engine.close()
