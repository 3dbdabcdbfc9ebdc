"""How credits read to a person: at least two decimals, more only when the amount has them."""

from __future__ import annotations

from decimal import Decimal


def credits_text(amount: Decimal) -> str:
    """``Decimal('1.500000')`` -> ``'1.50'``; ``Decimal('0.000123')`` -> ``'0.000123'``."""
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"
