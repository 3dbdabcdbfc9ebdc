"""Delivery to one target: a plain webhook (httpx POST of the alert as JSON) or any Prefect
notification block by name (Slack, Teams, email, custom webhook…: ``Block.load(name).notify``).
Raises ``DeliveryFailed`` with one sentence; the sender records it and retries.

A webhook's host is checked again right before the POST (``targets.py``: public addresses only,
unless allowed), redirects are not followed, and what the receiver answered is never repeated:
only its status goes into the sentence, so ``spojit notify test`` cannot be used to read
another server's replies."""

from __future__ import annotations

from typing import Any

from spojit_engine.errors import InvalidInput
from spojit_engine.notify.targets import check_webhook_target


class DeliveryFailed(Exception):
    pass


def deliver(
    channel: str, target: str, message: dict[str, Any], *, timeout_seconds: float,
    allow_private: bool,
) -> None:  # fmt: skip
    if channel == "webhook":
        try:
            check_webhook_target(target, allow_private=allow_private, resolve_required=True)
        except InvalidInput as exc:
            raise DeliveryFailed(str(exc)) from None
        _post(target, message, timeout_seconds)
    else:
        _notify_block(target, message)


def _post(url: str, message: dict[str, Any], timeout_seconds: float) -> None:
    import httpx

    try:
        response = httpx.post(url, json=message, timeout=timeout_seconds, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"POST {url} failed: {type(exc).__name__}.") from exc
    if response.status_code >= 300:
        raise DeliveryFailed(f"POST {url} answered {response.status_code}.")


def _notify_block(name: str, message: dict[str, Any]) -> None:
    from prefect.blocks.core import Block

    try:
        block: Any = Block.load(name)
    except (ValueError, Exception) as exc:  # Prefect raises ValueError, or an HTTP error
        raise DeliveryFailed(f"Cannot load the Prefect block {name!r}: {exc}.") from exc
    if not callable(getattr(block, "notify", None)):
        raise DeliveryFailed(f"The Prefect block {name!r} is not a notification block.")
    try:
        block.notify(body=message["text"], subject=message["subject"])
    except Exception as exc:
        raise DeliveryFailed(f"The Prefect block {name!r} failed: {exc}.") from exc
