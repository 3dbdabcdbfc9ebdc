"""Burn order and allocation, as properties of the pure core (no database)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.metering.core.burn import Block, allocate, burn_order_key, spendable

NOW = datetime(2026, 6, 15, tzinfo=UTC)


@st.composite
def blocks(draw: st.DrawFn) -> list[Block]:
    count = draw(st.integers(min_value=0, max_value=8))
    out = []
    for block_id in range(1, count + 1):
        expires = draw(st.one_of(st.none(), st.integers(min_value=-5, max_value=40)))
        out.append(
            Block(
                id=block_id,
                priority=draw(st.sampled_from([0, 10, 20, 30])),
                effective_at=NOW - timedelta(days=draw(st.integers(min_value=-3, max_value=60))),
                expires_at=None if expires is None else NOW + timedelta(days=expires),
                remaining_ucr=draw(st.integers(min_value=0, max_value=5_000)),
            )
        )
    return out


@settings(max_examples=300)
@given(blocks(), st.integers(min_value=0, max_value=30_000), st.randoms())
def test_shuffled_input_burns_the_same_way(
    given_blocks: list[Block], amount: int, rnd: random.Random
) -> None:
    shuffled = list(given_blocks)
    rnd.shuffle(shuffled)
    assert allocate(spendable(given_blocks, NOW), amount) == allocate(
        spendable(shuffled, NOW), amount
    )


@settings(max_examples=300)
@given(blocks(), st.integers(min_value=0, max_value=30_000))
def test_credits_are_conserved_and_no_block_goes_below_zero(
    given_blocks: list[Block], amount: int
) -> None:
    live = spendable(given_blocks, NOW)
    allocation = allocate(live, amount)
    by_id = {b.id: b for b in live}
    assert sum(take for _, take in allocation.takes) + allocation.shortfall_ucr == amount
    assert all(0 < take <= by_id[block_id].remaining_ucr for block_id, take in allocation.takes)
    assert allocation.shortfall_ucr == max(0, amount - sum(b.remaining_ucr for b in live))


@settings(max_examples=300)
@given(blocks(), st.integers(min_value=0, max_value=30_000))
def test_a_later_block_pays_only_once_every_earlier_one_is_empty(
    given_blocks: list[Block], amount: int
) -> None:
    live = spendable(given_blocks, NOW)
    takes = dict(allocate(live, amount).takes)
    for earlier, later in itertools.pairwise(live):
        if takes.get(later.id):
            assert takes.get(earlier.id) == earlier.remaining_ucr


def _apply(blocks_: list[Block], takes: tuple[tuple[int, int], ...]) -> list[Block]:
    taken = dict(takes)
    return [
        Block(b.id, b.priority, b.effective_at, b.expires_at, b.remaining_ucr - taken.get(b.id, 0))
        for b in blocks_
    ]


@settings(max_examples=300)
@given(
    blocks(), st.integers(min_value=0, max_value=15_000), st.integers(min_value=0, max_value=15_000)
)
def test_paying_in_two_steps_equals_paying_once(
    given_blocks: list[Block], first: int, second: int
) -> None:
    live = spendable(given_blocks, NOW)
    one_step = _apply(live, allocate(live, first + second).takes)
    after_first = _apply(live, allocate(live, first).takes)
    two_steps = _apply(after_first, allocate(spendable(after_first, NOW), second).takes)
    assert [b.remaining_ucr for b in one_step] == [b.remaining_ucr for b in two_steps]


def test_allowance_burns_before_top_ups_and_soonest_expiry_first() -> None:
    topup = Block(1, 30, NOW - timedelta(days=9), NOW + timedelta(days=300), 100)
    allowance = Block(2, 10, NOW - timedelta(days=1), NOW + timedelta(days=20), 100)
    promo_late = Block(3, 0, NOW, NOW + timedelta(days=9), 100)
    promo_soon = Block(4, 0, NOW, NOW + timedelta(days=2), 100)
    promo_forever = Block(5, 0, NOW - timedelta(days=30), None, 100)
    ordered = sorted([topup, allowance, promo_late, promo_soon, promo_forever], key=burn_order_key)
    assert [b.id for b in ordered] == [4, 3, 5, 2, 1]


def test_expired_future_and_empty_blocks_cannot_pay() -> None:
    expired = Block(1, 10, NOW - timedelta(days=30), NOW, 100)  # [effective, expires): gone at NOW
    future = Block(2, 10, NOW + timedelta(seconds=1), None, 100)
    empty = Block(3, 10, NOW, None, 0)
    live = Block(4, 10, NOW, None, 5)
    assert spendable([expired, future, empty, live], NOW) == [live]


def test_a_budget_leaves_the_rest_as_shortfall() -> None:
    block = Block(1, 10, NOW, None, 100)
    allocation = allocate([block], 80, budget_ucr=30)
    assert allocation.takes == ((1, 30),)
    assert allocation.shortfall_ucr == 50
    assert allocate([block], 80, budget_ucr=-5).shortfall_ucr == 80
