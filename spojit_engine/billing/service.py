"""``Billing``: what the ``Engine`` holds for buying credits — the Stripe client (built lazily, on
first use, so nothing imports or configures Stripe until a top-up is bought), checkout, the
webhook and the success redirect.

A landed top-up needs no hook of its own to resume paused work: it is granted inside
``Ledger.locked``, so the ledger's ``credits_added`` observers (the credit guards register one)
hear of it once the transaction has committed — and only if the balance really rose.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

from spojit_engine.accounts import find_workspace, require_admin
from spojit_engine.billing.checkout import CheckoutStarted, retrieve_session, start_checkout
from spojit_engine.billing.orders import OrderRecord, find_order, list_orders, load_order
from spojit_engine.billing.stripe_client import make_client
from spojit_engine.billing.stripe_events import (
    EventHandler,
    WebhookResult,
    fulfil_session,
    parse_event,
    record_reject,
    verify_signature,
)
from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput, MalformedEvent, UnknownOrder
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.settings import Settings

_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")


class Billing:
    """Top-ups for every workspace of one ledger, through one Stripe client."""

    def __init__(self, ledger: Ledger, settings: Settings, *, http_client: Any = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self._http_client = http_client
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._events = EventHandler(ledger, ledger.catalog)

    @property
    def client(self) -> Any:
        """The ``stripe.StripeClient``; ``BillingUnavailable`` when no API key is set."""
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.settings, self._http_client)
            return self._client

    # -- buying ----------------------------------------------------------------------------------

    def start_topup(self, workspace_id: str, pack_id: str, *, by: str | None) -> CheckoutStarted:
        """A Checkout Session for ``pack_id``; only an admin of the workspace (or the local
        operator, ``by=None``) may buy. Nothing is written unless the request is valid."""
        find_workspace(self.ledger, workspace_id)
        require_admin(self.ledger, workspace_id, by, "buy top-ups")
        pack = self.ledger.catalog.pack(pack_id)
        return start_checkout(
            self.ledger,
            self.client,
            workspace_id=workspace_id,
            pack=pack,
            member_id=by,
            currency=self.ledger.catalog.currency,
            public_url=self.settings.public_url,
            reuse=timedelta(minutes=self.settings.topup_checkout_reuse_minutes),
        )

    def orders(self, workspace_id: str, *, limit: int) -> list[OrderRecord]:
        with read_transaction(self.ledger.engine) as conn:
            return list_orders(conn, workspace_id, limit=limit)

    def order(self, order_id: str) -> OrderRecord:
        with read_transaction(self.ledger.engine) as conn:
            return load_order(conn, order_id)

    # -- Stripe tells us -------------------------------------------------------------------------

    def handle_webhook(self, payload: bytes, signature: str | None) -> WebhookResult:
        """Verify, read and act on one Stripe event. Not Stripe's (bad signature): 400, nothing
        kept. Stripe's but unreadable: 400, kept in ``stripe_rejects``. Readable but not ours
        or of a type we do not handle: 200 "ignored"."""
        settings = self.settings
        verify_signature(
            payload,
            signature,
            secret=settings.stripe_webhook_secret,
            tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        )
        try:
            event = parse_event(
                payload,
                depth_max=settings.json_depth_max,
                digits_max=settings.json_number_digits_max,
            )
            return self._events.handle(event)
        except MalformedEvent as exc:
            record_reject(self.ledger.engine, payload, exc, self.ledger.clock())
            raise

    def fulfil_session(self, session_id: str) -> OrderRecord:
        """The success redirect: ask Stripe about the session, and grant now if it is paid."""
        if not _SESSION_ID.match(session_id or ""):
            raise InvalidInput("session_id must be a Checkout Session id (cs_…).")
        with read_transaction(self.ledger.engine) as conn:
            order = find_order(conn, session_id=session_id)
        if order is None:
            raise UnknownOrder(session_id)
        session = retrieve_session(self.client, session_id)
        fulfil_session(self.ledger, self.ledger.catalog, order, session)
        return self.order(order.id)
