"""A bounded retry of one ledger operation while its database is unreachable (a restart, a
failover, a dropped connection): the same call, with the same idempotency key, is made again
until it answers or ``SPOJIT_LEDGER_RETRY_SECONDS_MAX`` has passed, then ``LedgerUnavailable``
goes up as before (the waiting itself: ``db.wait_while_unavailable``).

Safe only because every operation wrapped here is idempotent by its key (or by its hold's state),
or only reads: when a first attempt committed but its answer was lost with the connection, the
retry finds the key and returns the first result — it never posts twice. Refusals and every
other error are never retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from spojit_engine.db import wait_while_unavailable
from spojit_engine.errors import LedgerUnavailable

P = ParamSpec("P")
T = TypeVar("T")


def retry_unavailable(operation: Callable[P, T]) -> Callable[P, T]:
    """Retry ``operation`` (idempotent by its key) while the ledger database is unavailable."""

    @functools.wraps(operation)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return wait_while_unavailable(
            functools.partial(operation, *args, **kwargs),
            operation.__qualname__,
            retry_on=lambda exc: isinstance(exc, LedgerUnavailable),
        )

    return call
