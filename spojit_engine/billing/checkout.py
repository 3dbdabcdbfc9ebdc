"""Buying a pack: a PENDING order, then a Stripe Checkout Session for it (payment mode, the pack's
price, our ids in ``metadata`` and ``payment_intent_data.metadata``, one idempotency key per order).

One open order per member and pack at a time: a repeated click (or ten at once) within
``SPOJIT_TOPUP_CHECKOUT_REUSE_MINUTES`` gets the same order and the same Checkout. The order is
found or made under the workspace's lock (``Ledger.locked``), so concurrent clicks agree on one;
a click that finds it still without its session asks Stripe again with the order's idempotency
key, and Stripe answers with the same session. After the window, or once a payment has begun on
it, a click starts a new order (the old Checkout still expires at Stripe, which reports it).

``session_params`` is pure, so a test can pin every form field Stripe receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spojit_engine.billing.orders import (
    OrderRecord,
    OrderState,
    find_order,
    insert_order,
    load_order,
    new_order_id,
    open_order,
    transition,
    update_order,
)
from spojit_engine.billing.stripe_client import SessionFacts, session_facts, stripe_errors
from spojit_engine.db import write_transaction
from spojit_engine.errors import PaymentProviderError
from spojit_engine.metering.core.catalog import Pack
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.money import ucr_to_credits

# Stripe replaces this literal in success_url with the session's id.
SESSION_ID_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"


@dataclass(frozen=True, slots=True)
class CheckoutStarted:
    order_id: str
    session_id: str
    checkout_url: str


def idempotency_key(order_id: str) -> str:
    """One per order: a retried create (ours or the client's) returns the same session."""
    return f"spojit-checkout-{order_id}"


def session_params(
    *, order_id: str, workspace_id: str, pack: Pack, currency: str, public_url: str
) -> dict[str, Any]:
    """The form Stripe receives for one order's Checkout Session."""
    metadata = {
        "order_id": order_id,
        "workspace_id": workspace_id,
        "pack": pack.id,
        "credits": f"{ucr_to_credits(pack.credits_ucr):f}",
    }
    base = public_url.rstrip("/")
    return {
        "mode": "payment",
        "client_reference_id": order_id,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": pack.price_cents,
                    "product_data": {"name": f"{pack.name} (spojit top-up)"},
                },
            }
        ],
        "metadata": metadata,
        "payment_intent_data": {"metadata": dict(metadata)},
        "success_url": f"{base}/billing/success?session_id={SESSION_ID_PLACEHOLDER}",
        "cancel_url": f"{base}/billing?checkout=cancelled",
    }


def _open_order(
    ledger: Ledger, *, workspace_id: str, pack: Pack, member_id: str | None, currency: str,
    reuse: timedelta,
) -> OrderRecord:  # fmt: skip
    """The member's open order for ``pack`` (made within ``reuse``), or a new PENDING one."""
    with ledger.locked(workspace_id) as tx:
        found = open_order(tx.conn, workspace_id, member_id, pack.id, since=tx.now - reuse)
        if found is not None:
            return found
        order_id = new_order_id()
        insert_order(
            tx.conn,
            id=order_id,
            workspace_id=workspace_id,
            member_id=member_id,
            pack_id=pack.id,
            credits_ucr=pack.credits_ucr,
            amount_cents=pack.price_cents,
            currency=currency,
            state=OrderState.PENDING.value,
            refunded_cents=0,
            clawed_back_ucr=0,
            created_at=tx.now,
            updated_at=tx.now,
        )
        return load_order(tx.conn, order_id)


def start_checkout(
    ledger: Ledger,
    client: Any,
    *,
    workspace_id: str,
    pack: Pack,
    member_id: str | None,
    currency: str,
    public_url: str,
    reuse: timedelta,
) -> CheckoutStarted:
    """The member's open order for the pack and its session, or a new PENDING order, its
    session created, its id and URL kept.

    If Stripe refuses, the order is FAILED with Stripe's reason and the error is raised.
    """
    order = _open_order(ledger, workspace_id=workspace_id, pack=pack, member_id=member_id,
                        currency=currency, reuse=reuse)  # fmt: skip
    if order.session_id is not None and order.checkout_url is not None:
        return CheckoutStarted(order.id, order.session_id, order.checkout_url)
    order_id = order.id
    params = session_params(
        order_id=order_id,
        workspace_id=workspace_id,
        pack=pack,
        currency=currency,
        public_url=public_url,
    )
    try:
        with stripe_errors("create a Checkout Session"):
            session = client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": idempotency_key(order_id)}
            )
        facts = session_facts(session)
        if not facts.url:
            raise PaymentProviderError(f"Stripe created session {facts.id} without a URL.")
    except PaymentProviderError as exc:
        _fail(ledger, workspace_id, order_id, str(exc))
        raise
    with write_transaction(ledger.engine) as conn:  # a twin click may have kept the same already
        update_order(
            conn,
            order_id,
            session_id=facts.id,
            checkout_url=facts.url,
            updated_at=ledger.clock(),
        )
    return CheckoutStarted(order_id=order_id, session_id=facts.id, checkout_url=facts.url)


def _fail(ledger: Ledger, workspace_id: str, order_id: str, reason: str) -> None:
    with ledger.locked(workspace_id) as tx:
        order = find_order(tx.conn, order_id=order_id)
        if order is None or order.order_state is not OrderState.PENDING:
            return
        state = transition(order_id, order.order_state, OrderState.FAILED)
        update_order(tx.conn, order_id, state=state.value, detail=reason, updated_at=tx.now)


def retrieve_session(client: Any, session_id: str) -> SessionFacts:
    with stripe_errors(f"retrieve Checkout Session {session_id}"):
        return session_facts(client.v1.checkout.sessions.retrieve(session_id))
