"""A bounded retry of one ledger operation while its database is unreachable (a restart, a
failover, a dropped connection): the same call, with the same idempotency key, is made again
until it answers or ``SPOJIT_LEDGER_RETRY_SECONDS_MAX`` has passed, then ``LedgerUnavailable``
goes up as before.

Safe only because every operation wrapped here is idempotent by its key (or by its hold's state):
when a first attempt committed but its answer was lost with the connection, the retry finds the
key and returns the first result — it never posts twice. Refusals and every other error are
never retried. Waits double from ``SPOJIT_LEDGER_RETRY_BACKOFF_SECONDS`` up to
``RETRY_WAIT_SECONDS_MAX``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from spojit_engine.errors import LedgerUnavailable
from spojit_engine.settings import get_settings

P = ParamSpec("P")
T = TypeVar("T")

RETRY_WAIT_SECONDS_MAX = 2.0
_log = logging.getLogger(__name__)


def retry_unavailable(operation: Callable[P, T]) -> Callable[P, T]:
    """Retry ``operation`` (idempotent by its key) while the ledger database is unavailable."""

    @functools.wraps(operation)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        settings = get_settings()
        deadline = time.monotonic() + settings.ledger_retry_seconds_max
        wait = settings.ledger_retry_backoff_seconds
        while True:
            try:
                return operation(*args, **kwargs)
            except LedgerUnavailable as exc:
                if time.monotonic() + wait > deadline:
                    raise
                _log.warning("%s Retrying %s in %.1f s.", exc, operation.__qualname__, wait)
            time.sleep(wait)
            wait = min(wait * 2, RETRY_WAIT_SECONDS_MAX)

    return call
