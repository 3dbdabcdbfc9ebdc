"""The payment rule (``billing/payment_rules.py``): an amount paid buys credits at the pack's price
per credit, rounded down to the micro-credit; refunds then follow what was granted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.billing.payment_rules import paid_credits_ucr_floor, refund_clawback_ucr_ceil

credits = st.integers(min_value=1, max_value=10**12)  # up to a million credits in µcr
cents = st.integers(min_value=1, max_value=10**9)


@settings(max_examples=300, deadline=None)
@given(credits_ucr=credits, price_cents=cents, paid_cents=cents)
def test_it_grants_what_was_paid_for_rounded_down(
    credits_ucr: int, price_cents: int, paid_cents: int
) -> None:
    granted = paid_credits_ucr_floor(
        credits_ucr=credits_ucr, price_cents=price_cents, paid_cents=paid_cents
    )
    # floor: never a fraction of a micro-credit more than was paid for, never a whole one less
    assert granted * price_cents <= credits_ucr * paid_cents < (granted + 1) * price_cents
    if paid_cents == price_cents:
        assert granted == credits_ucr
    more = paid_credits_ucr_floor(
        credits_ucr=credits_ucr, price_cents=price_cents, paid_cents=paid_cents + 1
    )
    assert more >= granted  # paying more never buys less


@settings(max_examples=300, deadline=None)
@given(credits_ucr=credits, price_cents=cents, paid_cents=cents, data=st.data())
def test_refunds_follow_what_was_granted(
    credits_ucr: int, price_cents: int, paid_cents: int, data: st.DataObject
) -> None:
    granted = paid_credits_ucr_floor(
        credits_ucr=credits_ucr, price_cents=price_cents, paid_cents=paid_cents
    )
    full = refund_clawback_ucr_ceil(
        credits_ucr=granted, refunded_cents=paid_cents, amount_cents=paid_cents
    )
    assert full == granted  # a full refund of what was paid takes back exactly what it bought
    part = data.draw(st.integers(min_value=0, max_value=paid_cents))
    taken = refund_clawback_ucr_ceil(
        credits_ucr=granted, refunded_cents=part, amount_cents=paid_cents
    )
    assert 0 <= taken <= granted


def test_nothing_paid_buys_nothing() -> None:
    for paid in (0, -5):
        assert paid_credits_ucr_floor(credits_ucr=500, price_cents=1000, paid_cents=paid) == 0
    assert paid_credits_ucr_floor(credits_ucr=500, price_cents=0, paid_cents=10) == 0
