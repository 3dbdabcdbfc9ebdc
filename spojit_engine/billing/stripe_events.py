"""Stripe webhooks: verify the signature on the raw body, de-duplicate by event id, act once.

"Same transaction": an event that changes an order runs inside ``Ledger.locked(workspace)`` — the
workspace's write lock, which also serialises every other ledger write of that workspace. In that
one transaction it checks ``stripe_events`` for its id, applies the change (``fulfil.py``: order
row, grant, clawback) and inserts its id; all commit or none do. The grant's key derives from the
Checkout Session (``stripe:{cs_id}``), so even a success redirect racing the webhook, in another
transaction, cannot grant twice.

Refund and dispute facts are first merged into ``stripe_payments`` (monotonic, so storing them
twice is harmless) in a transaction that takes no workspace lock — the order may not be known yet;
PostgreSQL's unique-key wait on that row orders it against a fulfilment linking the same payment,
so whichever commits second sees the other. When the order is known, a second, locked transaction
applies them together with the event id. Delivery order does not matter.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.billing import schema
from spojit_engine.billing.fulfil import (
    Applied,
    close_order,
    insert_ignoring_duplicates,
    note_payment_intent,
    reconcile,
    record_paid,
    store_payment_facts,
)
from spojit_engine.billing.orders import OrderRecord, OrderState, find_order, load_order
from spojit_engine.billing.payment_rules import PaymentFacts, dispute_status_of
from spojit_engine.billing.stripe_client import (
    SessionFacts,
    charge_facts,
    dispute_facts,
    read_event,
    session_facts,
)
from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import (
    BillingUnavailable,
    InvalidInput,
    InvalidSignature,
    MalformedEvent,
)
from spojit_engine.jsonbody import parse_json
from spojit_engine.metering.core.catalog import Catalog
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.metering.ledger.posting import LedgerTx

SESSION_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.closed")
HANDLED_EVENTS = (*SESSION_EVENTS, "charge.refunded", *DISPUTE_EVENTS)


@dataclass(frozen=True, slots=True)
class WebhookResult:
    event_id: str
    type: str
    outcome: str  # granted, awaiting_payment, failed, expired, clawed_back, restored, stored, …
    order_id: str | None
    workspace_id: str | None = None
    landed_ucr: int = 0
    detail: str | None = None


def verify_signature(
    payload: bytes, signature: str | None, *, secret: str | None, tolerance_seconds: int
) -> None:
    """``InvalidSignature`` unless Stripe signed exactly these bytes with ``secret``, at a time
    within ``tolerance_seconds`` of now — either way: stripe-python refuses a signature older
    than that, and this refuses one from further in the future (Stripe signs when it sends, so
    only clock skew puts a timestamp ahead, and the same tolerance covers it; a signature dated
    years ahead would otherwise stay replayable for as long). Nothing is parsed before this:
    what fails here was not sent by Stripe, and is not recorded."""
    if not secret:
        raise BillingUnavailable(
            "Stripe webhooks are not configured: set SPOJIT_STRIPE_WEBHOOK_SECRET."
        )
    if not signature or not signature.isprintable():
        raise InvalidSignature("The request carries no Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("The body is not UTF-8 text, so Stripe did not sign it.") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance_seconds)
    except stripe.SignatureVerificationError as exc:
        reason = " ".join(str(exc.user_message or exc).split()).rstrip(".")
        raise InvalidSignature(f"The Stripe signature was refused: {reason}.") from None
    ahead = _signed_at(signature) - time.time()
    if ahead > tolerance_seconds:
        raise InvalidSignature(
            f"The Stripe signature was refused: it is dated {int(ahead)} s in the future, "
            f"more than the {tolerance_seconds} s tolerance."
        )


def _signed_at(signature: str) -> int:
    """The ``t=`` timestamp of a header stripe-python has verified, read as it reads it (so it
    is there and a number)."""
    items = [item.split("=", 2) for item in signature.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


def parse_event(payload: bytes, *, depth_max: int, digits_max: int) -> Any:
    """The ``stripe.Event`` of a verified body, or ``MalformedEvent`` (bounded parsing first)."""
    try:
        data = parse_json(payload, depth_max=depth_max, digits_max=digits_max)
    except InvalidInput as exc:
        raise MalformedEvent(f"The Stripe event cannot be read: {exc}") from None
    return read_event(data)


def record_reject(engine: SAEngine, payload: bytes, error: MalformedEvent, now: datetime) -> None:
    """Keep a verified event we refused (400) for the operator: its id and type as far as they
    can be read, why, and the body's SHA-256 (the body itself is Stripe's to resend)."""
    event_id = kind = None
    try:
        data = parse_json(payload, depth_max=8, digits_max=20)
    except InvalidInput:
        data = None
    if isinstance(data, dict):
        event_id, kind = _clip(data.get("id"), 255), _clip(data.get("type"), 64)
    with write_transaction(engine) as conn:
        conn.execute(
            schema.stripe_rejects.insert().values(
                event_id=event_id,
                type=kind,
                reason=str(error),
                body_sha256=hashlib.sha256(payload).hexdigest(),
                received_at=now,
            )
        )


def _clip(value: Any, length: int) -> str | None:
    if not isinstance(value, str):
        return None
    return "".join(c for c in value if c.isprintable())[:length] or None


def event_seen(conn: Connection, event_id: str) -> bool:
    e = schema.stripe_events.c
    return conn.execute(select(e.event_id).where(e.event_id == event_id)).first() is not None


def record_event(conn: Connection, event: Any, applied: Applied, now: datetime) -> None:
    insert_ignoring_duplicates(
        conn,
        schema.stripe_events,
        {
            "event_id": event.id,
            "type": str(event.type)[:64],
            "order_id": applied.order_id,
            "outcome": applied.outcome,
            "detail": applied.detail,
            "received_at": now,
        },
    )


def _result(event: Any, applied: Applied) -> WebhookResult:
    return WebhookResult(
        event_id=event.id,
        type=event.type,
        outcome=applied.outcome,
        order_id=applied.order_id,
        workspace_id=applied.workspace_id,
        landed_ucr=applied.landed_ucr,
        detail=applied.detail,
    )


def _duplicate(event: Any) -> WebhookResult:
    return WebhookResult(event.id, event.type, "duplicate", None, detail="already processed")


class EventHandler:
    """Acts on verified events for one ledger; ``handle`` is the only entry point."""

    def __init__(self, ledger: Ledger, catalog: Catalog) -> None:
        self.ledger = ledger
        self.catalog = catalog

    def handle(self, event: Any) -> WebhookResult:
        """Act on ``event`` once; a concurrent twin that loses a UNIQUE race is answered as the
        duplicate it is (the retry finds the winner's event id)."""
        try:
            return self._handle(event)
        except IntegrityError:
            return self._handle(event)

    def _handle(self, event: Any) -> WebhookResult:
        with read_transaction(self.ledger.engine) as conn:
            if event_seen(conn, event.id):
                return _duplicate(event)
        obj = event.data.object
        if event.type in SESSION_EVENTS:
            return self._session_event(event, session_facts(obj))
        if event.type == "charge.refunded":
            charge = charge_facts(obj)
            facts = PaymentFacts(
                refunded_cents=charge.amount_refunded_cents,
                amount_cents=charge.amount_cents,
                charge_id=charge.id,
            )
            key = charge.payment_intent_id or charge.id
            return self._payment_event(event, key, facts, order_hint=charge.order_id)
        if event.type in DISPUTE_EVENTS:
            dispute = dispute_facts(obj)
            facts = PaymentFacts(
                charge_id=dispute.charge_id,
                dispute_id=dispute.id,
                dispute_status=dispute_status_of(dispute.status),
            )
            key = dispute.payment_intent_id or dispute.charge_id or dispute.id
            return self._payment_event(event, key, facts, order_hint=None)
        return self._alone(event, Applied("ignored", None, detail="event type not handled"))

    def _alone(self, event: Any, applied: Applied) -> WebhookResult:
        """Record an event that touches no ledger (unknown to us, or not handled)."""
        with write_transaction(self.ledger.engine) as conn:
            if event_seen(conn, event.id):
                return _duplicate(event)
            record_event(conn, event, applied, self.ledger.clock())
        return _result(event, applied)

    def _session_event(self, event: Any, session: SessionFacts) -> WebhookResult:
        with read_transaction(self.ledger.engine) as conn:
            order = find_order(conn, session_id=session.id)
            if order is None and session.order_id:
                order = find_order(conn, order_id=session.order_id)
        if order is None or (order.session_id and order.session_id != session.id):
            return self._alone(event, Applied("ignored", None, detail="not a spojit top-up"))
        with self.ledger.locked(order.workspace_id) as tx:
            if event_seen(tx.conn, event.id):
                return _duplicate(event)
            applied = self._apply_session(tx, load_order(tx.conn, order.id), event.type, session)
            record_event(tx.conn, event, applied, tx.now)
        return _result(event, applied)

    def _apply_session(
        self, tx: LedgerTx, order: OrderRecord, event_type: str, session: SessionFacts
    ) -> Applied:
        if event_type == "checkout.session.async_payment_failed":
            return close_order(tx, order, OrderState.FAILED, "the payment failed")
        if event_type == "checkout.session.expired":
            return close_order(tx, order, OrderState.EXPIRED, "the Checkout Session expired")
        paid = event_type == "checkout.session.async_payment_succeeded" or (
            session.payment_status == "paid"
        )
        if paid:
            return record_paid(tx, order, session, self.catalog)
        return note_payment_intent(tx, order, session)

    def _payment_event(
        self, event: Any, payment_key: str, facts: PaymentFacts, *, order_hint: str | None
    ) -> WebhookResult:
        with write_transaction(self.ledger.engine) as conn:
            if event_seen(conn, event.id):
                return _duplicate(event)
            hinted = find_order(conn, order_id=order_hint, payment_intent_id=payment_key)
            _, linked = store_payment_facts(
                conn,
                payment_key,
                facts,
                order_id=hinted.id if hinted else None,
                now=self.ledger.clock(),
            )
            order = find_order(conn, order_id=linked) if linked else None
            if order is None:
                applied = Applied(
                    "stored", None, detail="no order yet; applied when its session is paid"
                )
                record_event(conn, event, applied, self.ledger.clock())
                return _result(event, applied)
        with self.ledger.locked(order.workspace_id) as tx:
            if event_seen(tx.conn, event.id):
                return _duplicate(event)
            applied = reconcile(tx, load_order(tx.conn, order.id))
            record_event(tx.conn, event, applied, tx.now)
        return _result(event, applied)


def fulfil_session(
    ledger: Ledger, catalog: Catalog, order: OrderRecord, session: SessionFacts
) -> Applied:
    """The success redirect's path: the same ``record_paid`` as the webhook, when Stripe says
    the session is paid; otherwise nothing changes."""
    if session.payment_status != "paid":
        return Applied("awaiting_payment", order.id, order.workspace_id)
    with ledger.locked(order.workspace_id) as tx:
        return record_paid(tx, load_order(tx.conn, order.id), session, catalog)
