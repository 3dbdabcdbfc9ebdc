"""How credits read to a person — the one rule, used by the CLI, the web pages (the ``credits``
Jinja filter) and the API docs:

- **Exact, never rounded.** A credit has six decimal places (1 µcr = 0.000001); an amount shows
  at least two places and more only when it has them: ``1.50``, ``0.000123``, ``5.897728``.
- **Thousands are grouped** with commas: ``1,047.69647``, ``50,000.00`` (input is never read
  from this text: programs get the JSON form below).
- **A quantity of credits in the catalog** (a pack's size, a plan's allowance) is a count, not a
  balance: ``500 credits``, ``2,500 credits``; places only when it has them (``credits_count``).
- **One column, one width.** Amounts shown side by side (a table column, a card, a total row)
  share the places the most precise of them needs, so ``5.897728`` never sits above ``0.00``
  (it sits above ``0.000000``) and the decimal points line up.
- **Prices are money, not credits**: cents as a decimal amount and the currency,
  ``12.00 USD`` (``price_text``); never through a float.
- **Programs get every place.** JSON (CLI ``--json`` and the HTTP API) carries credits as decimal
  strings with six places (``"5.897728"``, ``"0.000000"``); a page puts that exact value in the
  ``title`` of each shown amount (``credits_exact``).
- **An expiry given as a date** (``--expires 2027-03-01``, a form's date) means the credits last
  through that UTC day: they expire at the next midnight UTC (``expiry_of_day``). An expiry at
  midnight UTC is shown as that last day, ``through 2027-03-01``; any other instant as
  ``2027-03-02 10:00 UTC`` (``expiry_text``). Both commands and pages read and show it so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
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
    return f"{amount:,.{shown}f}"


def credits_column(amounts: Iterable[Decimal]) -> list[str]:
    """Amounts shown together (a column, a card): all with the places the most precise needs."""
    values = list(amounts)
    places = max((places_needed(a) for a in values), default=PLACES_MIN)
    return [credits_text(a, places=places) for a in values]


def credits_count(amount: Decimal) -> str:
    """A catalog quantity (a pack, an allowance): ``500``, ``2,500``, ``12.5`` — no places it
    does not have."""
    return f"{amount.normalize():,f}" if amount != amount.to_integral_value() else f"{amount:,.0f}"


def credits_exact(amount: Decimal) -> str:
    """Every place (six): what JSON carries and a page's ``title`` shows."""
    return f"{amount:.{PLACES_MAX}f}"


def price_text(cents: int, currency: str) -> str:
    """A price in cents as people read it: ``1200, "usd"`` -> ``12.00 USD``."""
    return f"{Decimal(cents).scaleb(-2):.2f} {currency.upper()}"


def expiry_of_day(day: date) -> datetime:
    """A date-only expiry: the credits last through ``day`` (UTC), so they expire at its end."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def expiry_text(expires_at: datetime | None) -> str:
    """An expiry as people read it: ``through 2027-03-01`` when it falls at midnight UTC (the
    end of that day, as ``expiry_of_day`` reads a date), else the instant in UTC; ``never``."""
    if expires_at is None:
        return "never"
    at = expires_at.astimezone(UTC)
    if at.time() == time():
        return f"through {at.date() - timedelta(days=1)}"
    return f"{at:%Y-%m-%d %H:%M} UTC"
