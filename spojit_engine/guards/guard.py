"""``Guard``: stops and resumes the scheduled and webhook-triggered work of a workspace.

A **scope** is the whole workspace (``''``: out of credits) or one workflow (its budget cap). Its
state runs ``OK -> EXHAUSTED -> RESUMING -> OK`` (``policy.transition``):

- **exhaust** (a refused debit or hold, a refused run start, a webhook meeting an empty balance):
  record why, then switch off every *active* schedule of the scope's deployments through the
  Prefect API and record each one it switched off. A deployment or schedule that is already
  paused was paused by a person, and the guard never touches it.
- **resume** (a top-up or renewal committed, a cap raised, the next UTC day, or the renewals
  flow finding credits): switch back on exactly the schedules it recorded — unless a person
  changed that schedule since (Prefect's ``updated`` moved) or another open scope still holds it
  — then replay the scope's webhook queue in order.

Pausing and resuming a scope are serialised across processes by the lease on its state row.
Every call is idempotent: a second exhaust of an exhausted scope, or a resume of an OK one, is a
cheap read and nothing more.

The guard builds its sub-services and passes itself: the webhook queues
(``deployments/webhooks.py``) and the resumer of runs stopped for credits (``runs/resume.py``)
see it only as ``port.GuardPort``; the caps (``budgets.py``) need nothing of it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from sqlalchemy import select

from spojit_engine.db import read_transaction
from spojit_engine.errors import InsufficientCredits
from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.budgets import Budgets, spent_today_ucr
from spojit_engine.guards.deployments import schedules
from spojit_engine.guards.deployments.webhooks import Webhooks
from spojit_engine.guards.errors import BudgetExceeded, PrefectUnavailable
from spojit_engine.guards.policy import Cause, GuardState, out_of_credits
from spojit_engine.guards.runs.refusals import requeue_untouched_webhook_run
from spojit_engine.guards.runs.resume import Resumer
from spojit_engine.guards.schema import WORKSPACE_SCOPE
from spojit_engine.guards.store import Binding, ScopeState
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.reads.reports import BalanceRecord, read_balance, read_fresh
from spojit_engine.metering.store import schema
from spojit_engine.money import credits_to_ucr_exact, ucr_to_credits

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger
    from spojit_engine.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ResumeWatch:
    """What the guard did about credits that landed inside ``Guard.watch``: the deployments it
    resumed, and whether a resume is still pending (Prefect unreachable, or the lease held)."""

    resumed: list[str] = field(default_factory=list)  # deployment ids
    pending: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    resumed: list[str]  # "workspace_id/scope" resumed
    pauses_retried: int
    requests_started: int


_guards: WeakKeyDictionary[Ledger, Guard] = WeakKeyDictionary()


class Guard:
    """Watches one ledger through its observers (the ledger never imports the guard): pauses on
    refusals, resumes on grants. The ``Engine`` builds one per ledger; ``Guard.of`` finds it."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.sa = ledger.engine
        self.clock = ledger.clock
        self.budgets = Budgets(self.sa, self.clock, self.settings.budget_cache_seconds)
        self.hooks = Webhooks(self)  # sub-services see the guard as port.GuardPort
        self.resumer = Resumer(self)  # runs stopped for credits resume when credits return
        self._owner = f"{socket.gethostname()[:32]}:{os.getpid()}"
        observers = ledger.observers
        observers.on_credits_added(self.on_credits_added)
        observers.on_credits_added(self.resumer.on_credits_added)  # after the guard resumed
        observers.on_refused(self.on_refused)
        observers.add_spend_limit(self.budgets.limit, applies=self.budgets.applies)
        _guards[ledger] = self
        self._local = threading.local()  # this thread's open ResumeWatch, if any
        self._changed: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(workspace_id)`` after this guard stopped or resumed a scope of it (the
        notifier re-reads the workspace then; the guard never imports who listens)."""
        self._changed.append(listener)

    def _tell(self, workspace_id: str) -> None:
        for listener in list(self._changed):
            try:
                listener(workspace_id)
            except Exception:
                log.exception("A guard listener failed for workspace %s", workspace_id)

    def workspace_stop(self, workspace_id: str) -> tuple[datetime, str] | None:
        """Since when, and why, the workspace's scheduled and webhook runs are paused for
        credits (None while they are not): what the notifier's out-of-credits alert says."""
        state = self.state(workspace_id)
        if state is None or not state.stopped or state.since is None:
            return None
        return state.since, self.reason_now(state)

    def reason_now(self, state: ScopeState) -> str:
        """Why a scope is stopped, as a person reads it now. A workspace out of credits is
        described from the live card: the figure in the refusal it recorded was the balance
        less the holds of that moment, and goes stale as they settle, so shown beside the card
        it disagreed with it. Its ``needed`` part is what was refused, which does not change."""
        if state.scope != WORKSPACE_SCOPE or state.cause is not Cause.CREDITS:
            return state.reason or "The credit guard stopped it."
        card = self.balance_record(state.workspace_id, bring_up_to_date=False)
        return out_of_credits(card.workspace_name, card.remaining_ucr, card.resets_at,
                              state.needed_ucr)  # fmt: skip

    @contextmanager
    def watch(self) -> Iterator[ResumeWatch]:
        """Collect what this thread's resumes did while the block runs (a command that adds
        credits says which deployments came back)."""
        watch = ResumeWatch()
        previous, self._local.watch = getattr(self._local, "watch", None), watch
        try:
            yield watch
        finally:
            self._local.watch = previous

    def deployment_names(self, deployment_ids: list[str]) -> list[str]:
        """The names the deployments were bound under (their ids when unknown)."""
        found = (store.binding_of(self.sa, d) for d in deployment_ids)
        return [b.deployment_name if b else d for b, d in zip(found, deployment_ids, strict=True)]

    def _watched(self) -> ResumeWatch:
        return getattr(self._local, "watch", None) or ResumeWatch()

    @classmethod
    def of(cls, ledger: Ledger) -> Guard:
        """The guard watching ``ledger`` (a process's run-time ledger comes with its guard)."""
        found = _guards.get(ledger)
        if found is None:
            raise LookupError("No guard watches this ledger; build it through Engine.")
        return found

    def new_owner(self) -> str:
        """A lease owner id unique to one acquisition."""
        return f"{self._owner}:{secrets.token_hex(4)}"

    def note(self, message: str) -> None:
        """Something the guard could not do now and will retry (renewals flow, next event)."""
        log.warning("%s", message)

    @property
    def _limit(self) -> int:
        return self.settings.page_size_max

    @contextmanager
    def _lease(self, workspace_id: str, scope: str) -> Iterator[bool]:
        settings = self.settings
        attempts = max(
            1, int(settings.guard_lease_wait_seconds / settings.guard_lease_poll_seconds)
        )
        with store.scope_lease(
            self.sa,
            workspace_id,
            scope,
            self.new_owner(),
            self.clock,
            timedelta(seconds=settings.guard_lease_seconds),
            attempts,
            lambda: time.sleep(settings.guard_lease_poll_seconds),
        ) as held:
            yield held

    # -- reading -----------------------------------------------------------------------------------

    def balance_record(self, workspace_id: str, *, bring_up_to_date: bool = True) -> BalanceRecord:
        if bring_up_to_date:  # without the ledger's write lock unless something is due
            return read_fresh(
                self.ledger, workspace_id, lambda c, now: read_balance(c, workspace_id, now)
            )
        with read_transaction(self.sa) as conn:
            return read_balance(conn, workspace_id, self.clock())

    def workspace_name(self, workspace_id: str) -> str:
        w = schema.workspaces.c
        with read_transaction(self.sa) as conn:
            name = conn.execute(select(w.name).where(w.id == workspace_id)).scalar()
        return str(name) if name is not None else workspace_id

    def state(self, workspace_id: str, scope: str = WORKSPACE_SCOPE) -> ScopeState | None:
        return store.read_state(self.sa, workspace_id, scope)

    def stopped_reason(
        self, workspace_id: str, workflow: str, *, check_balance: bool = False
    ) -> str | None:
        """Why ``workflow`` may not start now (None: it may). ``check_balance`` also looks at the
        ledger, and stops the workspace (or the workflow's day) when it finds nothing left."""
        for scope in (WORKSPACE_SCOPE, workflow):
            found = self.state(workspace_id, scope)
            if found is None or not found.stopped or found.cause is Cause.BUDGET_RUN:
                continue
            if not self._resumable(found):  # the live balance decides, never a stale reason
                return found.reason or "The guard stopped it."
        if not check_balance:
            return None
        balance = self.balance_record(workspace_id)
        if balance.remaining_ucr <= 0:
            reason = out_of_credits(
                balance.workspace_name, balance.remaining_ucr, balance.resets_at
            )
            self.exhaust(
                workspace_id,
                scope=WORKSPACE_SCOPE,
                cause=Cause.CREDITS,
                reason=reason,
                needed_ucr=1,
            )
            return reason
        over = self.stop_for_day_cap(workspace_id, workflow, balance.workspace_name)
        return None if over is None else str(over)

    def stop_for_day_cap(
        self, workspace_id: str, workflow: str, workspace: str
    ) -> BudgetExceeded | None:
        """The workflow's day cap is spent: stop it (its schedules, its webhook queue) until the
        next UTC day or a raised cap, and return the refusal; None while the day has room."""
        over = self.budgets.day_refusal(workspace, workspace_id, workflow)
        if over is not None:
            self.exhaust(
                workspace_id,
                scope=workflow,
                cause=Cause.BUDGET_DAY,
                reason=str(over),
                needed_ucr=0,
                until=over.until,
            )
        return over

    # -- stopping ----------------------------------------------------------------------------------

    def exhaust(
        self,
        workspace_id: str,
        *,
        scope: str,
        cause: Cause,
        reason: str,
        needed_ucr: int,
        until: datetime | None = None,
    ) -> bool:
        """Stop a scope and pause its deployments' schedules; True when this call stopped it."""
        found = self.state(workspace_id, scope)
        if found is not None and found.state is GuardState.EXHAUSTED and found.pauses_applied_at:
            return False
        with self._lease(workspace_id, scope) as held:
            if not held:
                self.note(f"Workspace {workspace_id}: another process holds the guard's lease.")
                return False
            state = self.state(workspace_id, scope)
            if state is None:
                return False
            newly = state.state is not GuardState.EXHAUSTED
            if newly:
                now = self.clock()
                state = store.move_state(
                    self.sa,
                    state,
                    GuardState.EXHAUSTED,
                    now,
                    cause=cause.value,
                    reason=reason,
                    needed_ucr=needed_ucr,
                    since=now,
                    until=until,
                    pauses_applied_at=None,
                )
            elif state.pauses_applied_at is not None:
                return False
            paused = self._apply_pauses(state, self._targets(state))
        if newly:
            self._emit(prefect_api.EVENT_EXHAUSTED, state, paused)
            self._tell(workspace_id)
        return newly

    def _targets(self, state: ScopeState) -> list[Binding]:
        workflow = None if state.scope == WORKSPACE_SCOPE else state.scope
        return store.bindings(self.sa, state.workspace_id, workflow, limit=self._limit)

    def _apply_pauses(self, state: ScopeState, targets: list[Binding]) -> list[str]:
        """Pause the targets' active schedules (under the scope's lease); the deployments hit."""
        try:
            paused = (
                schedules.pause(self.sa, state, targets, clock=self.clock, limit=self._limit)
                if targets
                else []
            )
        except PrefectUnavailable as exc:
            self.note(f"Workspace {state.workspace_id}: schedules not paused yet: {exc}")
            return []
        store.mark_pauses_applied(self.sa, state.workspace_id, state.scope, self.clock())
        return paused

    # -- resuming ----------------------------------------------------------------------------------

    def resume(self, workspace_id: str, *, scope: str = WORKSPACE_SCOPE) -> bool:
        """Resume a stopped scope if what stopped it is gone; True when this call resumed it."""
        found = self.state(workspace_id, scope)
        if found is None or not found.stopped:
            return False
        if scope == WORKSPACE_SCOPE:
            self.ledger.bring_up_to_date(workspace_id)  # outside the lease: may renew
        with self._lease(workspace_id, scope) as held:
            if not held:
                self.note(f"Workspace {workspace_id}: resume deferred, the guard's lease is held.")
                self._watched().pending = True
                return False
            state = self.state(workspace_id, scope)
            if state is None or not state.stopped or not self._resumable(state):
                return False
            if state.state is GuardState.EXHAUSTED:
                state = store.move_state(self.sa, state, GuardState.RESUMING, self.clock())
            try:
                resumed = schedules.resume(self.sa, state, clock=self.clock, limit=self._limit)
            except PrefectUnavailable as exc:
                self.note(f"Workspace {workspace_id}: schedules not resumed yet: {exc}")
                self._watched().pending = True
                return False
            self._watched().resumed.extend(resumed)
            store.move_state(
                self.sa,
                state,
                GuardState.OK,
                self.clock(),
                cause=None,
                reason=None,
                needed_ucr=None,
                since=None,
                until=None,
                pauses_applied_at=None,
            )
        self._emit(prefect_api.EVENT_RESUMED, state, resumed)
        self._tell(workspace_id)
        workflow = None if scope == WORKSPACE_SCOPE else scope
        for hook in self.hooks.hooks_of(workspace_id, workflow):
            self.hooks.drain(hook.name)
        return True

    def resume_pending(self, workspace_id: str, scope: str = WORKSPACE_SCOPE) -> bool:
        """What stopped the scope is gone but its schedules are not back yet (Prefect was
        unreachable, or the resume has not run): the background reconciler finishes it."""
        state = self.state(workspace_id, scope)
        if state is None or not state.stopped:
            return bool(store.open_pauses(self.sa, workspace_id, scope, limit=1))
        return self._resumable(state)

    def _resumable(self, state: ScopeState) -> bool:
        now = self.clock()
        if state.cause is Cause.CREDITS or state.scope == WORKSPACE_SCOPE:
            balance = self.balance_record(state.workspace_id, bring_up_to_date=False)
            return balance.remaining_ucr >= max(state.needed_ucr or 1, 1)
        if state.until is not None and now >= state.until:
            return True  # the next UTC day
        budget = self.budgets.get(state.workspace_id, state.scope)
        if budget is None:
            return True  # its caps were removed
        if state.since is not None and budget.updated_at <= state.since:
            return False  # its caps did not change since it stopped
        if state.cause is Cause.BUDGET_RUN or budget.max_per_day_ucr is None:
            return True
        with read_transaction(self.sa) as conn:
            spent = spent_today_ucr(conn, state.workspace_id, state.scope, now)
        return not budget.day_spent(spent)

    # -- what the ledger tells us ------------------------------------------------------------------

    def on_credits_added(self, workspace_id: str) -> None:
        """A grant or renewal committed: resume the workspace if it was out of credits."""
        found = self.state(workspace_id)
        if found is not None and found.stopped:
            self.resume(workspace_id)

    def on_refused(self, workspace_id: str, error: InsufficientCredits, usage: Usage) -> None:
        """A metered node's debit or hold was refused: stop the workspace, or the workflow."""
        if isinstance(error, BudgetExceeded) and error.cause == Cause.TEST_CAP.value:
            return  # a test run reached its own cap: that run stops, nothing else does
        if isinstance(error, BudgetExceeded):
            self.exhaust(
                workspace_id,
                scope=error.workflow,
                cause=Cause(error.cause),
                reason=str(error),
                needed_ucr=credits_to_ucr_exact(error.needed, allow_zero=True),
                until=error.until,
            )
        else:
            self.exhaust(
                workspace_id,
                scope=WORKSPACE_SCOPE,
                cause=Cause.CREDITS,
                reason=str(error),
                needed_ucr=credits_to_ucr_exact(error.needed, allow_zero=True),
            )
        requeue_untouched_webhook_run(self, str(error), usage.node_call)

    # -- the renewals flow -------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Finish whatever is pending: pauses not applied yet, resumes whose cause is gone (a
        renewal, the next UTC day), webhook queues of workspaces that may run."""
        resumed, retried, started = [], 0, 0
        for state in store.stopped_states(self.sa, limit=self._limit):
            if state.state is GuardState.EXHAUSTED and state.pauses_applied_at is None:
                with self._lease(state.workspace_id, state.scope) as held:
                    if held:
                        self._apply_pauses(state, self._targets(state))
                        retried += 1
            if self.resume(state.workspace_id, scope=state.scope):
                resumed.append(f"{state.workspace_id}/{state.scope}")
        for hook_name in self.hooks.waiting_hooks(limit=self._limit):
            started += self.hooks.drain(hook_name)
        started += self.resumer.reconcile()
        return ReconcileReport(resumed, retried, started)

    def prune(self) -> int:
        """Forget history older than ``SPOJIT_GUARD_HISTORY_DAYS``; open state is never pruned."""
        before = self.clock() - timedelta(days=self.settings.guard_history_days)
        return (
            store.prune_pauses(self.sa, before)
            + self.hooks.prune(before)
            + self.budgets.prune(before)
        )

    # -- deployments -------------------------------------------------------------------------------

    def bind(self, deployment_id: str, *, workspace_id: str, workflow: str, name: str) -> None:
        """Bill ``deployment_id``'s runs to a workspace; pause it now if its scope is stopped."""
        binding = Binding(deployment_id, workspace_id, workflow, name)
        store.bind(self.sa, binding, self.clock())
        for scope in (WORKSPACE_SCOPE, workflow):
            state = self.state(workspace_id, scope)
            if state is None or state.state is not GuardState.EXHAUSTED:
                continue
            with self._lease(workspace_id, scope) as held:
                if held:
                    self._apply_pauses(state, [binding])

    def _emit(self, event: str, state: ScopeState, deployment_ids: list[str]) -> None:
        balance = self.balance_record(state.workspace_id, bring_up_to_date=False)
        payload = {
            "scope": "workspace" if state.scope == WORKSPACE_SCOPE else "workflow",
            "workflow": state.scope or None,
            "cause": state.cause.value if state.cause else None,
            "reason": state.reason,
            "remaining": str(ucr_to_credits(balance.remaining_ucr)),
            "resets_at": balance.resets_at.isoformat(),
            "deployments": deployment_ids,
        }
        prefect_api.emit(
            event,
            workspace_id=state.workspace_id,
            workspace=balance.workspace_name,
            payload=payload,
            deployment_ids=deployment_ids,
        )
