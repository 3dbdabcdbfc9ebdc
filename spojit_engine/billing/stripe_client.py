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

from spojit_engine.billing.schema import STRIPE_ID_LENGTH_MAX
from spojit_engine.errors import BillingUnavailable, MalformedEvent, PaymentProviderError
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


EVENT_TYPE_LENGTH_MAX = 64
CENTS_MAX = 10**9  # ten million in any currency: past Stripe's own maximum charge


def stripe_id(value: Any, what: str, *, required: bool = True) -> str | None:
    """An id Stripe sent: 1-255 printable characters, else ``MalformedEvent``."""
    if value is None and not required:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= STRIPE_ID_LENGTH_MAX
        or not value.isprintable()
    ):
        raise MalformedEvent(f"The Stripe event's {what} is not a Stripe id.")
    return value


def read_event(data: Any) -> Any:
    """The ``stripe.Event`` of a parsed, verified body — an object with an id, a type and
    ``data.object`` — else ``MalformedEvent`` saying what is missing."""
    if not isinstance(data, dict):
        raise MalformedEvent("The Stripe event is not a JSON object.")
    stripe_id(data.get("id"), "id")
    kind = data.get("type")
    if (
        not isinstance(kind, str)
        or not 0 < len(kind) <= EVENT_TYPE_LENGTH_MAX
        or not kind.isprintable()
    ):
        raise MalformedEvent("The Stripe event has no type.")
    body = data.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        raise MalformedEvent("The Stripe event has no data.object.")
    return stripe.Event.construct_from(data, None)


def plain(obj: Any) -> dict[str, Any]:
    """A Stripe object (no longer a dict in stripe 16) or a dict, as a plain dict."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"not a Stripe object: {type(obj).__name__}")


def object_id(value: Any, what: str = "reference") -> str | None:
    """An id field that may be a bare id or an expanded object."""
    if value is None:
        return None
    if isinstance(value, stripe.StripeObject):
        value = plain(value)
    if isinstance(value, Mapping):
        return stripe_id(value.get("id"), what, required=False)
    return stripe_id(value, what)


def _int(value: Any, what: str) -> int | None:
    """A whole number of cents, else ``MalformedEvent`` (``True`` is not a number here)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CENTS_MAX:
        raise MalformedEvent(f"The Stripe event's {what} is not a whole number of cents.")
    return value


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > STRIPE_ID_LENGTH_MAX or "\x00" in value:
        raise MalformedEvent(f"The Stripe event's {what} is not a short text.")
    return value


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
        id=str(stripe_id(data.get("id"), "session id")),
        status=_text(data.get("status"), "status"),
        payment_status=_text(data.get("payment_status"), "payment_status"),
        amount_total_cents=_int(data.get("amount_total"), "amount_total"),
        currency=_text(data.get("currency"), "currency"),
        payment_intent_id=object_id(data.get("payment_intent"), "payment_intent"),
        order_id=_text(
            meta.get("order_id") or data.get("client_reference_id"), "client_reference_id"
        ),
        url=data["url"] if isinstance(data.get("url"), str) else None,
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
        id=str(stripe_id(data.get("id"), "charge id")),
        payment_intent_id=object_id(data.get("payment_intent"), "payment_intent"),
        amount_cents=_int(data.get("amount"), "amount"),
        amount_refunded_cents=_int(data.get("amount_refunded"), "amount_refunded") or 0,
        order_id=_text(_metadata(data).get("order_id"), "order_id"),
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
        id=str(stripe_id(data.get("id"), "dispute id")),
        charge_id=object_id(data.get("charge"), "charge"),
        payment_intent_id=object_id(data.get("payment_intent"), "payment_intent"),
        status=_text(data.get("status"), "status"),
    )
