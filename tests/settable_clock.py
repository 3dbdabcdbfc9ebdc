"""The clock tests hand an ``Engine``: it says ``now`` until the test moves it."""

from __future__ import annotations

from datetime import datetime


class SettableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
