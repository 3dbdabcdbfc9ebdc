"""The one place the wall clock is read, so freezegun, tests and production agree."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A UTC-aware copy of ``moment``; a naive value is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
