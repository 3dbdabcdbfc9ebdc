"""Top-up orders: their states, the one transition function, and the rows that keep them.

    PENDING -> PAID | FAILED | EXPIRED
    PAID -> REFUNDED | DISPUTED
    REFUNDED -> REFUNDED (a further partial refund) | DISPUTED
    DISPUTED -> DISPUTED (lost) | PAID | REFUNDED (won: restored, less any refund)

FAILED and EXPIRED are final. A partial refund keeps the order's ``refunded_cents``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from spojit_engine.billing import schema
from spojit_engine.errors import IllegalTransition, UnknownOrder


class OrderState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


_ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING: frozenset({OrderState.PAID, OrderState.FAILED, OrderState.EXPIRED}),
    OrderState.PAID: frozenset({OrderState.REFUNDED, OrderState.DISPUTED}),
    OrderState.REFUNDED: frozenset({OrderState.REFUNDED, OrderState.DISPUTED}),
    OrderState.DISPUTED: frozenset({OrderState.DISPUTED, OrderState.PAID, OrderState.REFUNDED}),
    OrderState.FAILED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}
GRANTED_STATES = frozenset({OrderState.PAID, OrderState.REFUNDED, OrderState.DISPUTED})


def transition(order_id: str, current: OrderState, wanted: OrderState) -> OrderState:
    """``wanted`` if the move is legal, else ``IllegalTransition`` naming both states."""
    if wanted not in _ALLOWED[current]:
        raise IllegalTransition(f"Top-up order {order_id}", current.value, wanted.value)
    return wanted


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    workspace_id: str
    member_id: str | None
    pack_id: str
    credits_ucr: int
    amount_cents: int
    currency: str
    state: str
    session_id: str | None
    checkout_url: str | None
    payment_intent_id: str | None
    grant_id: int | None
    refunded_cents: int
    dispute_status: str | None
    clawed_back_ucr: int
    detail: str | None
    created_at: datetime
    updated_at: datetime
    flagged: bool  # the amount paid was not the price (see clawback.paid_credits_ucr_floor)

    @property
    def order_state(self) -> OrderState:
        return OrderState(self.state)

    @property
    def grant_key(self) -> str:
        """The key of the grant a paid order lands as: one per Checkout Session, whoever
        (webhook or success redirect, in any transaction) gets there first."""
        if self.session_id is None:
            raise UnknownOrder(self.id)
        return grant_key_for(self.session_id)


def grant_key_for(session_id: str) -> str:
    return f"stripe:{session_id}"


def new_order_id() -> str:
    return f"ord_{secrets.token_hex(8)}"


_COLUMNS = [getattr(schema.topup_orders.c, name) for name in OrderRecord.__dataclass_fields__]


def insert_order(conn: Connection, **values: Any) -> None:
    conn.execute(schema.topup_orders.insert().values(**values))


def update_order(conn: Connection, order_id: str, **values: Any) -> None:
    conn.execute(
        update(schema.topup_orders).where(schema.topup_orders.c.id == order_id).values(**values)
    )


def find_order(
    conn: Connection,
    *,
    order_id: str | None = None,
    session_id: str | None = None,
    payment_intent_id: str | None = None,
) -> OrderRecord | None:
    """The order with this id, else with this session, else with this payment intent."""
    o = schema.topup_orders.c
    for column, value in ((o.id, order_id), (o.session_id, session_id)):
        if value:
            row = conn.execute(select(*_COLUMNS).where(column == value)).one_or_none()
            if row is not None:
                return OrderRecord(*row)
    if payment_intent_id:
        row = conn.execute(
            select(*_COLUMNS).where(o.payment_intent_id == payment_intent_id).limit(1)
        ).one_or_none()
        if row is not None:
            return OrderRecord(*row)
    return None


def load_order(conn: Connection, order_id: str) -> OrderRecord:
    found = find_order(conn, order_id=order_id)
    if found is None:
        raise UnknownOrder(order_id)
    return found


def open_order(
    conn: Connection, workspace_id: str, member_id: str | None, pack_id: str, *, since: datetime
) -> OrderRecord | None:
    """The newest PENDING order of this member (None: the operator) for this pack created at or
    after ``since`` whose Checkout has not begun a payment (no payment intent yet), else None."""
    o = schema.topup_orders.c
    member = o.member_id.is_(None) if member_id is None else o.member_id == member_id
    row = conn.execute(
        select(*_COLUMNS)
        .where(
            o.workspace_id == workspace_id,
            member,
            o.pack_id == pack_id,
            o.state == OrderState.PENDING.value,
            o.payment_intent_id.is_(None),
            o.created_at >= since,
        )
        .order_by(o.created_at.desc(), o.id.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else OrderRecord(*row)


def list_orders(conn: Connection, workspace_id: str, *, limit: int) -> list[OrderRecord]:
    o = schema.topup_orders.c
    rows = conn.execute(
        select(*_COLUMNS)
        .where(o.workspace_id == workspace_id)
        .order_by(o.created_at.desc(), o.id.desc())
        .limit(limit)
    )
    return [OrderRecord(*row) for row in rows]
