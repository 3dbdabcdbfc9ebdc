"""How credits read to a person — the one rule, used by the CLI, the web pages (the ``credits``
Jinja filter) and the API docs:

- **Exact, never rounded.** A credit has six decimal places (1 µcr = 0.000001); an amount shows
  at least two places and more only when it has them: ``1.50``, ``0.000123``, ``5.897728``.
- **One column, one width.** Amounts shown side by side (a table column, a card, a total row)
  share the places the most precise of them needs, so ``5.897728`` never sits above ``0.00``
  (it sits above ``0.000000``) and the decimal points line up.
- **Prices are money, not credits**: cents as a decimal amount and the currency,
  ``12.00 USD`` (``price_text``); never through a float.
- **Programs get every place.** JSON (CLI ``--json`` and the HTTP API) carries credits as decimal
  strings with six places (``"5.897728"``, ``"0.000000"``); a page puts that exact value in the
  ``title`` of each shown amount (``credits_exact``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

PLACES_MIN = 2
PLACES_MAX = 6  # a micro-credit


def places_needed(amount: Decimal) -> int:
    """The decimal places ``amount`` really has (trailing zeros dropped), at least two."""
    exponent = amount.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return max(places, PLACES_MIN)


def credits_text(amount: Decimal, *, places: int | None = None) -> str:
    """``amount`` with ``places`` decimals (default: as many as it needs, at least two); a
    ``places`` below what the amount needs is raised to it, so nothing is ever rounded away."""
    shown = max(places or PLACES_MIN, places_needed(amount))
    return f"{amount:.{shown}f}"


def credits_column(amounts: Iterable[Decimal]) -> list[str]:
    """Amounts shown together (a column, a card): all with the places the most precise needs."""
    values = list(amounts)
    places = max((places_needed(a) for a in values), default=PLACES_MIN)
    return [credits_text(a, places=places) for a in values]


def credits_exact(amount: Decimal) -> str:
    """Every place (six): what JSON carries and a page's ``title`` shows."""
    return f"{amount:.{PLACES_MAX}f}"


def price_text(cents: int, currency: str) -> str:
    """A price in cents as people read it: ``1200, "usd"`` -> ``12.00 USD``."""
    return f"{Decimal(cents).scaleb(-2):.2f} {currency.upper()}"
