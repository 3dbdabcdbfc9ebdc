"""What a paid, failed, expired, refunded or disputed payment does to an order and the ledger.

Every function here runs inside one ``Ledger.locked`` transaction (a ``LedgerTx``): the order row,
the grant or clawback, and (in ``stripe_events``) the processed event id commit or roll back
together. Keys, all derived from Stripe's ids so a retry in another transaction finds them:

    stripe:{checkout_session_id}              the top-up grant (one per session)
    stripe:refund:{charge_id}:{refunded}      a clawback for a cumulative refunded amount (cents)
    stripe:dispute:{dispute_id}               a dispute's clawback
    stripe:dispute:{dispute_id}:won           its restoration (a new top-up grant)

``reconcile`` moves an order's clawed-back credits to what Stripe's facts call for (see
``payment_rules.py``), so facts that arrive before the grant are applied the moment it lands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from spojit_engine.billing import schema
from spojit_engine.billing.orders import (
    GRANTED_STATES,
    OrderRecord,
    OrderState,
    grant_key_for,
    load_order,
    transition,
    update_order,
)
from spojit_engine.billing.payment_rules import (
    DisputeStatus,
    PaymentFacts,
    disputed,
    granted_state,
    merge_facts,
    paid_credits_ucr_floor,
    target_clawback_ucr,
)
from spojit_engine.billing.stripe_client import SessionFacts
from spojit_engine.display import credits_text, price_text
from spojit_engine.errors import Conflict
from spojit_engine.metering.core.catalog import Catalog
from spojit_engine.metering.core.periods import term_end
from spojit_engine.metering.core.records import DEFAULT_PRIORITY
from spojit_engine.metering.ledger.clawback import claw_back
from spojit_engine.metering.ledger.maintenance import grant_block
from spojit_engine.metering.ledger.posting import LedgerTx
from spojit_engine.metering.ledger.replay import replayed_grant
from spojit_engine.metering.store import schema as ledger_schema
from spojit_engine.money import ucr_to_credits


@dataclass(frozen=True, slots=True)
class Applied:
    """What one payment fact did: ``outcome`` is a short word, ``landed_ucr`` the credits it
    added (a grant or a restoration)."""

    outcome: str
    order_id: str | None
    workspace_id: str | None = None
    landed_ucr: int = 0
    detail: str | None = None


# -- what Stripe said about a payment -------------------------------------------------------------


def insert_ignoring_duplicates(conn: Connection, table: Any, values: dict[str, Any]) -> int:
    """INSERT … ON CONFLICT DO NOTHING; returns the rows inserted (0 when the key existed).

    On PostgreSQL a concurrent insert of the same key waits for the other transaction, so the
    row read next is the one it committed."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
    return int(conn.execute(statement).rowcount or 0)


def store_payment_facts(
    conn: Connection, payment_key: str, new: PaymentFacts, *, order_id: str | None, now: datetime
) -> tuple[PaymentFacts, str | None]:
    """Merge ``new`` into the payment's stored facts (never backwards); link it to ``order_id``
    when given. Returns the merged facts and the order the payment belongs to, if known."""
    p = schema.stripe_payments.c
    insert_ignoring_duplicates(
        conn,
        schema.stripe_payments,
        {"payment_intent_id": payment_key, "refunded_cents": 0, "updated_at": now},
    )
    row = conn.execute(
        select(schema.stripe_payments).where(p.payment_intent_id == payment_key).with_for_update()
    ).one()
    merged = merge_facts(_facts_of(row), new)
    linked = row.order_id or order_id
    conn.execute(
        update(schema.stripe_payments)
        .where(p.payment_intent_id == payment_key)
        .values(
            order_id=linked,
            charge_id=merged.charge_id,
            amount_cents=merged.amount_cents,
            refunded_cents=merged.refunded_cents,
            dispute_id=merged.dispute_id,
            dispute_status=None if merged.dispute_status is None else merged.dispute_status.value,
            updated_at=now,
        )
    )
    return merged, linked


def _facts_of(row: Any) -> PaymentFacts:
    status = None if row.dispute_status is None else DisputeStatus(row.dispute_status)
    return PaymentFacts(
        refunded_cents=row.refunded_cents,
        amount_cents=row.amount_cents,
        charge_id=row.charge_id,
        dispute_id=row.dispute_id,
        dispute_status=status,
    )


def load_payment_facts(conn: Connection, order: OrderRecord) -> PaymentFacts:
    """Everything stored about the order's payment (by order id or payment intent), merged."""
    p = schema.stripe_payments.c
    match = [p.order_id == order.id]
    if order.payment_intent_id:
        match.append(p.payment_intent_id == order.payment_intent_id)
    rows = conn.execute(
        select(schema.stripe_payments).where(or_(*match)).order_by(p.payment_intent_id)
    ).all()
    facts = PaymentFacts()
    for row in rows:
        facts = merge_facts(facts, _facts_of(row))
    return facts


# -- a paid session lands as a grant --------------------------------------------------------------


def record_paid(
    tx: LedgerTx, order: OrderRecord, session: SessionFacts, catalog: Catalog
) -> Applied:
    """Grant the order's credits once (key ``stripe:{session}``), then apply any refund or dispute
    that arrived before it. A second call for a granted order changes nothing."""
    if session.order_id and session.order_id != order.id:
        raise Conflict(
            f"Checkout Session {session.id} belongs to order {session.order_id}, not {order.id}."
        )
    if order.order_state in GRANTED_STATES:
        return Applied("already_granted", order.id, order.workspace_id)
    order = _follow_amount_paid(tx, order, session)
    if order.credits_ucr == 0:
        return close_order(tx, order, OrderState.FAILED, order.detail or "nothing was paid")
    state = transition(order.id, order.order_state, OrderState.PAID)
    key = grant_key_for(session.id)
    grant = replayed_grant(tx.conn, key, order.workspace_id, "topup", order.credits_ucr)
    if grant is None:  # else an operator granted this session by hand: adopt that grant
        term_months = catalog.plan(tx.account.plan_id).term_months
        grant = grant_block(
            tx,
            key=key,
            kind="topup",
            amount_ucr=order.credits_ucr,
            priority=DEFAULT_PRIORITY["topup"],
            effective_at=tx.now,
            expires_at=term_end(tx.account.anchor_at, term_months, tx.now),
            granted_by="stripe",
            reason=f"top-up {order.pack_id} (order {order.id})",
        )
    payment_intent = session.payment_intent_id or order.payment_intent_id
    update_order(
        tx.conn,
        order.id,
        state=state.value,
        session_id=session.id,
        grant_id=grant.id,
        payment_intent_id=payment_intent,
        amount_cents=(
            session.amount_total_cents
            if session.amount_total_cents is not None
            else order.amount_cents
        ),
        updated_at=tx.now,
    )
    if payment_intent:
        store_payment_facts(tx.conn, payment_intent, PaymentFacts(), order_id=order.id, now=tx.now)
    after = reconcile(tx, load_order(tx.conn, order.id))
    return Applied(
        "granted",
        order.id,
        order.workspace_id,
        landed_ucr=order.credits_ucr + after.landed_ucr,
        detail=None if after.outcome == "unchanged" else f"then {after.outcome}",
    )


def _follow_amount_paid(tx: LedgerTx, order: OrderRecord, session: SessionFacts) -> OrderRecord:
    """An amount paid other than the price: the order buys what was paid (``payment_rules.py``'s
    payment rule) and is flagged; its credits and amount become what was granted and paid, so
    refunds follow them. Another currency buys nothing. The order as it now stands."""
    paid = session.amount_total_cents
    currency_differs = bool(session.currency) and session.currency != order.currency
    if (paid is None or paid == order.amount_cents) and not currency_differs:
        return order
    paid = 0 if currency_differs or paid is None else paid
    credits_ucr = paid_credits_ucr_floor(
        credits_ucr=order.credits_ucr, price_cents=order.amount_cents, paid_cents=paid
    )
    price = price_text(order.amount_cents, order.currency)
    got = price_text(paid, session.currency or order.currency)
    granted, pack = (credits_text(ucr_to_credits(u)) for u in (credits_ucr, order.credits_ucr))
    detail = f"flagged: paid {got} for a pack priced {price}; granted {granted} of {pack} credits"
    values = {"flagged": True, "detail": detail, "updated_at": tx.now}
    if credits_ucr > 0:
        values |= {"credits_ucr": credits_ucr, "amount_cents": paid}
    update_order(tx.conn, order.id, **values)
    return replace(load_order(tx.conn, order.id), credits_ucr=credits_ucr)


def note_payment_intent(tx: LedgerTx, order: OrderRecord, session: SessionFacts) -> Applied:
    """A session completed with its payment still processing: remember its payment intent."""
    if order.order_state is OrderState.PENDING and session.payment_intent_id:
        update_order(
            tx.conn,
            order.id,
            session_id=session.id,
            payment_intent_id=session.payment_intent_id,
            updated_at=tx.now,
        )
        store_payment_facts(
            tx.conn, session.payment_intent_id, PaymentFacts(), order_id=order.id, now=tx.now
        )
    return Applied("awaiting_payment", order.id, order.workspace_id)


def close_order(tx: LedgerTx, order: OrderRecord, wanted: OrderState, detail: str) -> Applied:
    """FAILED or EXPIRED: the order ends without credits (illegal once it was paid)."""
    if order.order_state is wanted:
        return Applied(f"already_{wanted.value}", order.id, order.workspace_id)
    state = transition(order.id, order.order_state, wanted)
    update_order(tx.conn, order.id, state=state.value, detail=detail, updated_at=tx.now)
    return Applied(state.value, order.id, order.workspace_id)


# -- refunds and disputes -------------------------------------------------------------------------


def reconcile(tx: LedgerTx, order: OrderRecord) -> Applied:
    """Claw back or restore so the order's clawed-back credits equal what its facts call for."""
    if order.order_state not in GRANTED_STATES or order.grant_id is None:
        return Applied("stored", order.id, order.workspace_id, detail="applies when it is paid")
    facts = load_payment_facts(tx.conn, order)
    target = target_clawback_ucr(
        credits_ucr=order.credits_ucr,
        amount_cents=order.amount_cents,
        refunded_cents=facts.refunded_cents,
        dispute_status=facts.dispute_status,
    )
    delta = target - order.clawed_back_ucr
    outcome, landed = "unchanged", 0
    if delta > 0:
        if disputed(facts.dispute_status):
            key, reason = f"stripe:dispute:{facts.dispute_id}", f"dispute {facts.dispute_id}"
        else:
            charge = facts.charge_id or order.payment_intent_id
            key = f"stripe:refund:{charge}:{facts.refunded_cents}"
            reason = f"refund of {facts.refunded_cents} of {order.amount_cents} cents"
        reason = f"{reason} (order {order.id})"
        claw_back(tx, grant_id=order.grant_id, amount_ucr=delta, key=key, reason=reason)
        outcome = "clawed_back"
    elif delta < 0:
        landed = -delta
        grant_block(
            tx,
            key=f"stripe:dispute:{facts.dispute_id}:won",
            kind="topup",
            amount_ucr=landed,
            priority=DEFAULT_PRIORITY["topup"],
            effective_at=tx.now,
            expires_at=_expiry_of(tx.conn, order.grant_id),
            granted_by="stripe",
            reason=f"dispute {facts.dispute_id} won (order {order.id})",
        )
        outcome = "restored"
    wanted = granted_state(facts.refunded_cents, facts.dispute_status)
    state = order.order_state
    if wanted is not state:
        state = transition(order.id, state, wanted)
    update_order(
        tx.conn,
        order.id,
        state=state.value,
        refunded_cents=min(facts.refunded_cents, order.amount_cents),
        dispute_status=None if facts.dispute_status is None else facts.dispute_status.value,
        clawed_back_ucr=target,
        updated_at=tx.now,
    )
    return Applied(outcome, order.id, order.workspace_id, landed)


def _expiry_of(conn: Connection, grant_id: int) -> datetime | None:
    g = ledger_schema.grants.c
    expires: datetime | None = conn.execute(
        select(g.expires_at).where(g.id == grant_id)
    ).scalar_one()
    return expires
