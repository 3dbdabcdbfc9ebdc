"""The pure rules: the order state machine, the proportional clawback's rounding, and facts that
arrive in any order. Hypothesis settings are pinned so the examples really run."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.billing.orders import OrderState, transition
from spojit_engine.billing.payment_rules import (
    DisputeStatus,
    PaymentFacts,
    dispute_status_of,
    granted_state,
    merge_facts,
    refund_clawback_ucr_ceil,
    target_clawback_ucr,
)
from spojit_engine.errors import IllegalTransition

S = OrderState
LEGAL = {
    (S.PENDING, S.PAID),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.EXPIRED),
    (S.PAID, S.REFUNDED),
    (S.PAID, S.DISPUTED),
    (S.REFUNDED, S.REFUNDED),
    (S.REFUNDED, S.DISPUTED),
    (S.DISPUTED, S.DISPUTED),
    (S.DISPUTED, S.PAID),
    (S.DISPUTED, S.REFUNDED),
}
PINNED = settings(max_examples=300, deadline=None, derandomize=True)


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(S, S)))
def test_one_transition_function_names_both_states(current: S, wanted: S) -> None:
    if (current, wanted) in LEGAL:
        assert transition("ord_1", current, wanted) is wanted
        return
    with pytest.raises(IllegalTransition) as refused:
        transition("ord_1", current, wanted)
    assert str(refused.value) == f"Top-up order ord_1 cannot go from {current} to {wanted}."


credits_ucr = st.integers(min_value=1, max_value=10**15)
amount_cents = st.integers(min_value=1, max_value=10**8)


@PINNED
@given(credits_ucr, amount_cents, st.data())
def test_partial_refunds_add_up_exactly_to_the_refund_of_their_total(
    credits: int, amount: int, data: st.DataObject
) -> None:
    """ceil(credits x refunded / amount) on the cumulative refund: deltas telescope."""
    steps = sorted(
        data.draw(st.lists(st.integers(min_value=0, max_value=amount), min_size=1, max_size=6))
    )
    clawed, total = 0, 0
    for refunded in steps:
        target = refund_clawback_ucr_ceil(
            credits_ucr=credits, refunded_cents=refunded, amount_cents=amount
        )
        assert target >= total  # never gives credits back for a larger refund
        clawed += target - total
        total = target
    last = steps[-1]
    assert clawed == refund_clawback_ucr_ceil(
        credits_ucr=credits, refunded_cents=last, amount_cents=amount
    )
    assert clawed * amount >= credits * last  # rounded up, never down
    assert (clawed - 1) * amount < credits * last


@PINNED
@given(credits_ucr, amount_cents, st.integers(min_value=0, max_value=10**9))
def test_a_refund_never_claws_back_more_than_the_pack(
    credits: int, amount: int, refunded: int
) -> None:
    clawed = refund_clawback_ucr_ceil(
        credits_ucr=credits, refunded_cents=refunded, amount_cents=amount
    )
    assert 0 <= clawed <= credits
    whole = refunded >= amount or credits * refunded > (credits - 1) * amount
    assert (clawed == credits) == whole
    assert refund_clawback_ucr_ceil(credits_ucr=credits, refunded_cents=0, amount_cents=amount) == 0


def test_the_rounding_is_up_to_the_micro_credit() -> None:
    # 500 credits for 1000 cents; a 1-cent refund is 0.5 credits exactly; 1 of 3 cents is not.
    assert (
        refund_clawback_ucr_ceil(credits_ucr=500_000_000, refunded_cents=1, amount_cents=1000)
        == 500_000
    )
    assert refund_clawback_ucr_ceil(credits_ucr=1_000_000, refunded_cents=1, amount_cents=3) == (
        333_334
    )


def test_a_dispute_takes_everything_and_winning_it_leaves_only_the_refunds() -> None:
    def target(refunded: int, status: DisputeStatus | None) -> int:
        return target_clawback_ucr(
            credits_ucr=900, amount_cents=300, refunded_cents=refunded, dispute_status=status
        )

    statuses = (None, DisputeStatus.OPEN, DisputeStatus.LOST)
    assert [target(100, s) for s in statuses] == [300, 900, 900]
    assert target(100, DisputeStatus.WON) == 300
    assert granted_state(0, None) is S.PAID and granted_state(1, None) is S.REFUNDED
    assert granted_state(1, DisputeStatus.OPEN) is S.DISPUTED
    assert granted_state(0, DisputeStatus.WON) is S.PAID
    assert [dispute_status_of(s) for s in ("needs_response", "warning_closed", "won", "lost")] == [
        DisputeStatus.OPEN,
        DisputeStatus.WON,
        DisputeStatus.WON,
        DisputeStatus.LOST,
    ]


facts = st.builds(
    PaymentFacts,
    refunded_cents=st.integers(min_value=0, max_value=5000),
    amount_cents=st.just(5000) | st.none(),
    charge_id=st.just("ch_1") | st.none(),
    dispute_id=st.just("dp_1") | st.none(),
    dispute_status=st.sampled_from([None, *DisputeStatus]),
)


@PINNED
@given(st.lists(facts, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_facts_merged_in_any_order_give_the_same_result(
    reports: list[PaymentFacts], rnd: object
) -> None:
    def merged(items: list[PaymentFacts]) -> tuple[object, ...]:
        result = PaymentFacts()
        for item in items:
            result = merge_facts(result, item)
        # Won and lost are both final: whichever came first stays (Stripe never sends both).
        rank = {None: 0, DisputeStatus.OPEN: 1}.get(result.dispute_status, 2)
        return (result.refunded_cents, result.amount_cents, result.charge_id, rank)

    shuffled = list(reports)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merged(reports) == merged(shuffled)
    assert merged(reports + reports) == merged(reports)  # replays change nothing
