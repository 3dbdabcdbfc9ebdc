"""Money rules, each stated once: credits are integers of micro-credits (µcr) inside,
``Decimal`` at the surface, never a float. Every conversion is one named function whose
name says how it rounds.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

from spojit_engine.display import credits_text
from spojit_engine.errors import InvalidInput

UCR_PER_CREDIT = 1_000_000
CREDIT_DECIMALS = 6
INT64_MAX = 2**63 - 1
# One operation moves at most a billion credits, so even millions of maximal grants
# stay far inside a signed 64-bit column.
MAX_AMOUNT_UCR = 10**9 * UCR_PER_CREDIT

_ONE_UCR = Decimal(1).scaleb(-CREDIT_DECIMALS)

# ``credits_to_ucr_exact``'s rule for a positive amount written as a decimal string, as a
# regular expression (ECMA and Python alike) for the OpenAPI schema: more than zero, at most
# the largest single amount, at most six places; no sign, exponent or leading zero.
_LARGEST_CREDITS = MAX_AMOUNT_UCR // UCR_PER_CREDIT
_NONZERO_FRACTION = "|".join(
    f"0{{{zeros}}}[1-9][0-9]{{0,{CREDIT_DECIMALS - zeros - 1}}}" for zeros in range(CREDIT_DECIMALS)
)
POSITIVE_CREDITS_PATTERN = (
    rf"^(?:[1-9][0-9]{{0,{len(str(_LARGEST_CREDITS)) - 2}}}(?:\.[0-9]{{1,{CREDIT_DECIMALS}}})?"
    rf"|{_LARGEST_CREDITS}(?:\.0{{1,{CREDIT_DECIMALS}}})?|0\.(?:{_NONZERO_FRACTION}))$"
)


def credits_to_ucr_exact(value: Decimal | int | str, *, allow_zero: bool = False) -> int:
    """Credits -> µcr with no rounding at all; anything inexact or out of range is refused.

    Floats are refused outright: ``0.1`` is not one tenth, and a ledger must not guess.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidInput(
            f"Amount must be a Decimal, an integer or a decimal string, not {type(value).__name__}."
        )
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"Amount {value!r} is not a number.") from None
    if not amount.is_finite():
        raise InvalidInput(f"Amount {value!r} is not a finite number.")
    floor = "zero or more" if allow_zero else "more than zero"
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(f"Amount {value} must be {floor} credits.")
    largest = MAX_AMOUNT_UCR // UCR_PER_CREDIT
    if amount > largest:
        raise InvalidInput(
            f"Amount {value} is beyond the largest single amount, {largest} credits."
        )
    if amount != amount.quantize(_ONE_UCR):  # safe: at most 16 significant digits by now
        raise InvalidInput(
            f"Amount {value} has more than {CREDIT_DECIMALS} decimal places; "
            "the smallest unit is 0.000001 credits."
        )
    ucr = int(amount.scaleb(CREDIT_DECIMALS))
    return ucr


def ucr_to_credits(ucr: int) -> Decimal:
    """µcr -> credits, exact, always with six decimal places."""
    return Decimal(ucr).scaleb(-CREDIT_DECIMALS).quantize(_ONE_UCR)


def usd_to_ucr_ceil(usd: Decimal | str, credits_per_usd: Decimal) -> int:
    """A USD model cost -> µcr, rounded up: a fraction of a micro-credit is still charged.

    LiteLLM reports float USD; pass ``Decimal(str(cost))`` so the float's shortest repr is used.
    """
    cost = Decimal(usd) if isinstance(usd, str) else usd
    if not cost.is_finite() or cost < 0:
        raise InvalidInput(f"Cost {usd} USD is not a non-negative finite number.")
    return int((cost * credits_per_usd).scaleb(CREDIT_DECIMALS).to_integral_value(ROUND_CEILING))


def format_credits(ucr: int) -> str:
    """µcr as a person reads it (see ``spojit_engine.display.credits_text``)."""
    return credits_text(ucr_to_credits(ucr))
