"""The pages' Jinja2 environment: templates under ``templates/`` here, autoescaped, with the one
credits format (``display.credits_text``) as the ``credits`` filter; ``render`` answers with a
page and ``PAGE_HEADERS``. Jinja2 is imported only when a page is first rendered."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse

from spojit_engine.display import credits_column, credits_count, credits_exact, credits_text
from spojit_engine.money import ucr_to_credits
from spojit_engine.results import member_label

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES_DIR = Path(__file__).with_name("templates")


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _money(cents: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower())
    amount = f"{Decimal(cents) / 100:,.2f}"
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,  # a misspelt name fails the test that renders it
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["credits"] = credits_text
    env.filters["credits_count"] = credits_count  # a pack's or an allowance's size: "500"
    env.filters["credits_column"] = credits_column  # amounts shown together share their places
    env.filters["credits_exact"] = credits_exact
    env.filters["when"] = _when
    env.filters["money"] = _money
    env.filters["ucr_credits"] = ucr_to_credits
    env.filters["member"] = member_label  # who ran a run: the same word as the CLI's
    env.globals["active"] = ""  # the nav's current item, set per page
    return env


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


# Pages are private and never framed; no script runs (there is none); forms post here, and
# the top-up form is redirected on to Stripe Checkout (https).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self' https:; frame-ancestors 'none'; base-uri 'none'"
    ),
}
