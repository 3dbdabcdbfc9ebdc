"""Money rules: exact µcr conversion, rounding up from USD, refusal of anything inexact."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine.errors import InvalidInput
from spojit_engine.money import (
    MAX_AMOUNT_UCR,
    POSITIVE_CREDITS_PATTERN,
    credits_to_ucr_exact,
    format_credits,
    ucr_to_credits,
    usd_to_ucr_ceil,
)

ucr_amounts = st.integers(min_value=1, max_value=MAX_AMOUNT_UCR)


@settings(max_examples=300)
@given(ucr_amounts)
def test_credits_and_ucr_round_trip_exactly(ucr: int) -> None:
    credits = ucr_to_credits(ucr)
    assert credits_to_ucr_exact(credits) == ucr
    assert credits_to_ucr_exact(str(credits)) == ucr


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=MAX_AMOUNT_UCR - 1), st.integers(min_value=1, max_value=9)
)
def test_a_seventh_decimal_is_refused(ucr: int, extra_digit: int) -> None:
    inexact = ucr_to_credits(ucr) + Decimal(extra_digit).scaleb(-7)
    with pytest.raises(InvalidInput, match="more than 6 decimal places"):
        credits_to_ucr_exact(inexact)


@settings(max_examples=300)
@given(
    st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=10_000),
)
def test_usd_rounds_up_to_the_next_micro_credit(usd: Decimal, credits_per_usd: int) -> None:
    exact_ucr = usd * credits_per_usd * 1_000_000
    charged = usd_to_ucr_ceil(usd, Decimal(credits_per_usd))
    assert charged >= exact_ucr
    assert charged - exact_ucr < 1


def test_litellm_float_sum_is_charged_from_its_shortest_repr() -> None:
    # DEPENDENCIES.md: three float costs summed to 4.0499999999999995e-05.
    cost = 1.35e-05 + 1.35e-05 + 1.35e-05
    assert usd_to_ucr_ceil(Decimal(str(cost)), Decimal(100)) == 4050


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "more than zero"),
        ("-1", "more than zero"),
        ("NaN", "not a finite number"),
        ("sNaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("1.0000001", "more than 6 decimal places"),
        ("abc", "not a number"),
        (Decimal(MAX_AMOUNT_UCR), "beyond the largest single amount"),
        ("1e400", "beyond the largest single amount"),
        (1.5, "not float"),
        (True, "not bool"),
    ],
)
def test_bad_amounts_are_refused_with_a_sentence(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        credits_to_ucr_exact(value)  # type: ignore[arg-type]


def test_zero_is_allowed_only_where_asked() -> None:
    assert credits_to_ucr_exact("0", allow_zero=True) == 0
    assert credits_to_ucr_exact("1.500000000") == 1_500_000  # trailing zeros are exact


@pytest.mark.parametrize(
    ("ucr", "text"), [(0, "0.00"), (1_500_000, "1.50"), (123, "0.000123"), (-2_000_000, "-2.00")]
)
def test_credits_read_with_two_decimals_or_more(ucr: int, text: str) -> None:
    assert format_credits(ucr) == text


@settings(max_examples=500)
@given(ucr=st.integers(min_value=-10, max_value=MAX_AMOUNT_UCR + 10), places=st.integers(0, 7))
def test_the_schema_pattern_says_what_credits_to_ucr_exact_accepts(ucr: int, places: int) -> None:
    """The OpenAPI schema's pattern for an amount (``POSITIVE_CREDITS_PATTERN``) matches a
    decimal written plainly with at most six places exactly when ``credits_to_ucr_exact`` takes
    it (a seventh place, even a zero, is never promised by the schema)."""
    text = f"{Decimal(ucr).scaleb(-6 - (places == 7)):.{places}f}"
    try:
        accepted = credits_to_ucr_exact(text) > 0 and places <= 6
    except InvalidInput:
        accepted = False
    assert bool(re.fullmatch(POSITIVE_CREDITS_PATTERN, text)) == accepted, text
