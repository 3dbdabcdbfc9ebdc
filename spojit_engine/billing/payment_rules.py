"""How many credits a top-up's money buys, and how much goes back when its money does. Pure:
integers in, integers out.

**The payment rule** (stated here once): a Checkout Session that paid ``paid_cents`` for a pack of
``credits_ucr`` priced ``price_cents`` grants ``floor(credits_ucr * paid_cents / price_cents)`` µcr
— what the amount paid buys at the pack's price per credit, rounded down (never a fraction of a
micro-credit the customer did not pay for). Paying the price grants exactly the pack; any other
amount grants in proportion and flags the order. The order then keeps what was granted and what
was paid, so the refund rule below claws back in proportion to *that*: a full refund takes back
exactly what was granted.

**The rounding rule** (stated here once): a refund of ``refunded_cents`` out of the order's
``amount_cents`` claws back ``ceil(credits_ucr * refunded_cents / amount_cents)`` µcr, computed
from the *cumulative* refunded amount. Rounding up follows the ledger's house rule (a fraction of a
micro-credit is still charged); computing from the cumulative amount makes partial refunds add up
exactly: the clawbacks of any sequence of partial refunds sum to the clawback of their total, and a
full refund claws back exactly the pack's credits, never more.

A dispute that is open or lost claws back the whole order (whatever a refund already took is part
of it); a dispute won (or an inquiry closed) restores it, so the order is back to its refunds.

What Stripe tells us only ever moves forward: the refunded amount only grows, and a dispute goes
none -> open -> won | lost, never back, so events applied in any order give the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from spojit_engine.billing.orders import OrderState


class DisputeStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


_DISPUTE_RANK = {None: 0, DisputeStatus.OPEN: 1, DisputeStatus.WON: 2, DisputeStatus.LOST: 2}
# Stripe's dispute statuses, read as ours: an inquiry closed without a chargeback counts as won.
_STRIPE_DISPUTE = {
    "won": DisputeStatus.WON,
    "warning_closed": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
}


def dispute_status_of(stripe_status: str | None) -> DisputeStatus:
    """Stripe's status of a dispute (needs_response, under_review, won, lost, warning_*…)."""
    return _STRIPE_DISPUTE.get(stripe_status or "", DisputeStatus.OPEN)


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What Stripe said about one payment, as far as credits care."""

    refunded_cents: int = 0
    amount_cents: int | None = None
    charge_id: str | None = None
    dispute_id: str | None = None
    dispute_status: DisputeStatus | None = None


def merge_facts(known: PaymentFacts, new: PaymentFacts) -> PaymentFacts:
    """``known`` updated by ``new``, never moving backwards (order of arrival does not matter)."""
    merged = replace(
        known,
        refunded_cents=max(known.refunded_cents, new.refunded_cents),
        amount_cents=known.amount_cents if known.amount_cents is not None else new.amount_cents,
        charge_id=known.charge_id or new.charge_id,
    )
    if _DISPUTE_RANK[new.dispute_status] > _DISPUTE_RANK[known.dispute_status]:
        merged = replace(
            merged,
            dispute_id=new.dispute_id or known.dispute_id,
            dispute_status=new.dispute_status,
        )
    return merged


def paid_credits_ucr_floor(*, credits_ucr: int, price_cents: int, paid_cents: int) -> int:
    """``floor(credits_ucr * paid_cents / price_cents)``: what ``paid_cents`` buys at the pack's
    price per credit (0 for a free or negative amount, and for a pack with no price)."""
    if price_cents <= 0 or paid_cents <= 0:
        return 0
    return (credits_ucr * paid_cents) // price_cents


def refund_clawback_ucr_ceil(*, credits_ucr: int, refunded_cents: int, amount_cents: int) -> int:
    """``ceil(credits_ucr * refunded / amount_cents)``, the refund clamped to ``[0, amount]``."""
    if amount_cents <= 0:
        return 0
    refunded = min(max(refunded_cents, 0), amount_cents)
    return -((-credits_ucr * refunded) // amount_cents)


def disputed(status: DisputeStatus | None) -> bool:
    """Open or lost: the money is (or may be) gone, so the credits go too."""
    return status in (DisputeStatus.OPEN, DisputeStatus.LOST)


def target_clawback_ucr(
    *,
    credits_ucr: int,
    amount_cents: int,
    refunded_cents: int,
    dispute_status: DisputeStatus | None,
) -> int:
    """How much of an order's credits should be clawed back, all told, given what Stripe said."""
    if disputed(dispute_status):
        return credits_ucr
    return refund_clawback_ucr_ceil(
        credits_ucr=credits_ucr, refunded_cents=refunded_cents, amount_cents=amount_cents
    )


def granted_state(refunded_cents: int, dispute_status: DisputeStatus | None) -> OrderState:
    """The state of an order whose credits landed, given its refunds and dispute."""
    if disputed(dispute_status):
        return OrderState.DISPUTED
    return OrderState.REFUNDED if refunded_cents > 0 else OrderState.PAID
