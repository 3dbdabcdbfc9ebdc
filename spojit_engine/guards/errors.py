"""The guards' refusals. Each is an ``InsufficientCredits`` (402; never retried by a node; a
metered node records it as ``refused``, or ``capped`` when a test run's own cap stopped it) or a
``NotFound`` / ``Unauthorized`` for the webhook door.

    InsufficientCredits
    ├── OutOfCredits       a run refused at its start: its workspace is out of credits
    ├── BudgetExceeded     a workflow's max_credits_per_run or max_credits_per_day would be crossed
    └── QueueFull          the workspace is out of credits and the workflow's webhook queue is full
    NotFound
    └── UnknownHook        POST /hooks/{name} for a name no deployment registered
    SpojitError
    └── PrefectUnavailable the Prefect API is not configured or did not answer
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from spojit_engine.errors import InsufficientCredits, NotFound, SpojitError
from spojit_engine.guards.policy import Cause
from spojit_engine.money import ucr_to_credits


class OutOfCredits(InsufficientCredits):
    """A run refused at its start because its workspace is out of credits."""

    code = "out_of_credits"

    def __init__(
        self,
        message: str,
        *,
        workspace: str,
        needed_ucr: int,
        available_ucr: int,
        resets_at: datetime,
    ) -> None:
        SpojitError.__init__(self, message)
        self.workspace = workspace
        self.needed: Decimal = ucr_to_credits(needed_ucr)
        self.available: Decimal = ucr_to_credits(max(available_ucr, 0))
        self.resets_at: datetime | None = resets_at


class BudgetExceeded(InsufficientCredits):
    """A spend the workspace could pay for, but one of its workflow's caps forbids."""

    code = "budget_exceeded"

    def __init__(
        self,
        message: str,
        *,
        workspace: str,
        workflow: str,
        cause: str,
        needed_ucr: int,
        allowed_ucr: int,
        until: datetime,
    ) -> None:
        SpojitError.__init__(self, message)
        self.workspace = workspace
        self.workflow = workflow
        self.cause = cause  # policy.Cause value: budget_run, budget_day or test_cap
        self.needed: Decimal = ucr_to_credits(needed_ucr)
        self.available: Decimal = ucr_to_credits(max(allowed_ucr, 0))
        self.resets_at: datetime | None = until
        self.until = until

    @property
    def usage_status(self) -> str:
        """A test run's own cap stopped it ("capped"), not a shortage of credits."""
        return "capped" if self.cause == Cause.TEST_CAP.value else "refused"


class QueueFull(InsufficientCredits):
    code = "webhook_queue_full"

    def __init__(self, hook: str, queued: int, reason: str) -> None:
        SpojitError.__init__(
            self,
            f"Webhook {hook} already has {queued} requests waiting, its limit; this one was not "
            f"queued. {reason}",
        )
        self.hook = hook
        self.queued = queued
        self.needed = Decimal(0)
        self.available = Decimal(0)
        self.resets_at = None


class UnknownHook(NotFound):
    code = "unknown_hook"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"No workflow webhook named {name!r}; deploy one with `spojit deploy FLOW --webhook`."
        )
        self.name = name


class PrefectUnavailable(SpojitError):
    code = "prefect_unavailable"
