"""The one door to Stripe: build the ``StripeClient`` from settings, turn its errors into ours, and
read its objects as plain values. ``stripe`` is imported here and only where billing is used, so
``import spojit_engine`` and read commands never load it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import stripe

from spojit_engine.errors import BillingUnavailable, PaymentProviderError
from spojit_engine.settings import Settings


def make_client(settings: Settings, http_client: stripe.HTTPClient | None = None) -> Any:
    """A ``StripeClient`` on ``SPOJIT_STRIPE_API_KEY``; ``SPOJIT_STRIPE_API_BASE`` moves its API
    address (stripe-mock, a test server). ``http_client`` is the seam tests fill with a fake."""
    if not settings.stripe_api_key:
        raise BillingUnavailable(
            "Stripe is not configured: set SPOJIT_STRIPE_API_KEY to buy top-ups."
        )
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_api_key,
        http_client=http_client,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=settings.stripe_network_retries_max,
    )


def _sentence(text: str) -> str:
    line = " ".join(text.split()).rstrip(".")
    return line or "no reason given"


@contextmanager
def stripe_errors(action: str) -> Iterator[None]:
    """Stripe's errors, wrapped where they enter: one sentence naming what we tried."""
    try:
        yield
    except stripe.StripeError as exc:
        reason = exc.user_message or getattr(exc, "_message", None) or type(exc).__name__
        status = f" (HTTP {exc.http_status})" if exc.http_status else ""
        raise PaymentProviderError(
            f"Stripe could not {action}{status}: {_sentence(str(reason))}."
        ) from exc


def plain(obj: Any) -> dict[str, Any]:
    """A Stripe object (no longer a dict in stripe 16) or a dict, as a plain dict."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"not a Stripe object: {type(obj).__name__}")


def object_id(value: Any) -> str | None:
    """An id field that may be a bare id or an expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return str(found) if found else None
    return object_id(plain(value))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _metadata(data: Mapping[str, Any]) -> dict[str, str]:
    meta = data.get("metadata") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, Mapping) else {}


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """A Checkout Session, as far as an order cares."""

    id: str
    status: str | None  # open, complete, expired
    payment_status: str | None  # paid, unpaid, no_payment_required
    amount_total_cents: int | None
    currency: str | None
    payment_intent_id: str | None
    order_id: str | None  # our metadata (or client_reference_id)
    url: str | None


def session_facts(obj: Any) -> SessionFacts:
    data = plain(obj)
    meta = _metadata(data)
    return SessionFacts(
        id=str(data["id"]),
        status=data.get("status"),
        payment_status=data.get("payment_status"),
        amount_total_cents=_int(data.get("amount_total")),
        currency=data.get("currency"),
        payment_intent_id=object_id(data.get("payment_intent")),
        order_id=meta.get("order_id") or data.get("client_reference_id"),
        url=data.get("url"),
    )


@dataclass(frozen=True, slots=True)
class ChargeFacts:
    id: str
    payment_intent_id: str | None
    amount_cents: int | None
    amount_refunded_cents: int
    order_id: str | None  # the payment intent's metadata, which Stripe copies to its charges


def charge_facts(obj: Any) -> ChargeFacts:
    data = plain(obj)
    return ChargeFacts(
        id=str(data["id"]),
        payment_intent_id=object_id(data.get("payment_intent")),
        amount_cents=_int(data.get("amount")),
        amount_refunded_cents=int(data.get("amount_refunded") or 0),
        order_id=_metadata(data).get("order_id"),
    )


@dataclass(frozen=True, slots=True)
class DisputeFacts:
    id: str
    charge_id: str | None
    payment_intent_id: str | None
    status: str | None


def dispute_facts(obj: Any) -> DisputeFacts:
    data = plain(obj)
    return DisputeFacts(
        id=str(data["id"]),
        charge_id=object_id(data.get("charge")),
        payment_intent_id=object_id(data.get("payment_intent")),
        status=data.get("status"),
    )
