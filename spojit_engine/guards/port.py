"""What the guard's sub-services and the run-time gate use of the ``Guard``, as a protocol.

``guard.py`` builds its sub-services (``deployments/webhooks.Webhooks``, ``runs/resume.Resumer``)
and passes itself; ``flow_run.py`` finds the run's guard and passes it to ``runs/``. They type
against ``GuardPort``, never import ``Guard``: the guard imports them, so an import back (even a
type-only one) would close a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine as SAEngine

    from spojit_engine.guards.errors import BudgetExceeded
    from spojit_engine.guards.policy import Cause
    from spojit_engine.guards.store import ScopeState
    from spojit_engine.metering.reads.reports import BalanceRecord
    from spojit_engine.settings import Settings


class HookQueue(Protocol):
    """What the gate uses of the webhook queues: a refused webhook run goes back in line."""

    def requeue(self, request_id: int, flow_run_id: str, reason: str) -> bool: ...

    def is_queued(self, request_id: int) -> bool: ...


class GuardPort(Protocol):
    """The ``Guard`` as its sub-services and the run-time gate see it."""

    @property
    def sa(self) -> SAEngine: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def hooks(self) -> HookQueue: ...

    def new_owner(self) -> str:
        """A lease owner id unique to one acquisition."""
        ...

    def note(self, message: str) -> None:
        """Something the guard could not do now and will retry."""
        ...

    def state(self, workspace_id: str, scope: str = ...) -> ScopeState | None: ...

    def balance_record(
        self, workspace_id: str, *, bring_up_to_date: bool = ...
    ) -> BalanceRecord: ...

    def workspace_name(self, workspace_id: str) -> str: ...

    def stopped_reason(
        self, workspace_id: str, workflow: str, *, check_balance: bool = ...
    ) -> str | None:
        """Why ``workflow`` may not start now (None: it may)."""
        ...

    def stop_for_day_cap(
        self, workspace_id: str, workflow: str, workspace: str
    ) -> BudgetExceeded | None:
        """The workflow's day cap is spent: stop it for the day, and say so."""
        ...

    def exhaust(
        self,
        workspace_id: str,
        *,
        scope: str,
        cause: Cause,
        reason: str,
        needed_ucr: int,
        until: datetime | None = ...,
    ) -> bool:
        """Stop a scope and pause its deployments' schedules."""
        ...

    def resume(self, workspace_id: str, *, scope: str = ...) -> bool:
        """Resume a stopped scope if what stopped it is gone."""
        ...

    def bind(self, deployment_id: str, *, workspace_id: str, workflow: str, name: str) -> None:
        """Bill ``deployment_id``'s runs to a workspace."""
        ...
