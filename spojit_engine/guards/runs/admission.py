"""Admission at flow start, for every kind of trigger.

Prefect hooks cannot refuse a run (they swallow exceptions), and a paused deployment still takes
manual and automation runs, so the refusal happens in the flow body: ``Workflow`` calls
``flow_run.admit_run`` first, which asks ``admit`` here and returns what it gives back as the
run's final state (``refusals.refused_state``). In a worker, Prefect would log that state's raise
as an ERROR with a traceback; ``refusal_log`` turns it into the one WARNING line it is.

A run is refused when its workspace is stopped (out of credits) and its balance still cannot pay
what was refused, or its workflow's day cap is spent. The ledger stays the authority on a single
debit: a run of a workspace the guard has not seen run dry yet starts, and its first node is
refused atomically (writing nothing) — which is what stops the workspace. A refused run is
recorded by ``refusals.record_refusal``: a ``refused`` node call named "credit guard" (so
Executions lists it), and a refused webhook run goes back to its hook's queue, to replay after
the resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spojit_engine.errors import InsufficientCredits
from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.errors import BudgetExceeded, OutOfCredits, PrefectUnavailable
from spojit_engine.guards.policy import Cause, day_budget_spent, out_of_credits
from spojit_engine.guards.runs.refusals import RunFacts, record_refusal

if TYPE_CHECKING:
    from spojit_engine.guards.port import GuardPort


def admit(
    guard: GuardPort, workspace_id: str, workflow: str, run: RunFacts
) -> InsufficientCredits | None:
    """The refusal of this run, or None to admit it (see the module docstring)."""
    if run.deployment_id is not None:
        _bind_if_unbound(guard, run.deployment_id, workspace_id, workflow)
    refusal: InsufficientCredits | None = _out_of_credits_refusal(guard, workspace_id)
    if refusal is None:
        refusal = _day_cap_refusal(guard, workspace_id, workflow)
    if refusal is not None:
        record_refusal(guard, workspace_id, workflow, run, refusal)
    return refusal


def _out_of_credits_refusal(guard: GuardPort, workspace_id: str) -> OutOfCredits | None:
    """The workspace is stopped and its balance still cannot pay what was refused; a stopped
    workspace whose credits are back is resumed here (nothing told the guard yet)."""
    state = guard.state(workspace_id)
    if state is None or not state.stopped:
        return None
    balance = guard.balance_record(workspace_id)  # may renew, and so resume
    state = guard.state(workspace_id)
    needed = max((state.needed_ucr or 1) if state else 1, 1)
    if state is not None and state.stopped and balance.remaining_ucr < needed:
        return OutOfCredits(
            out_of_credits(
                balance.workspace_name,
                balance.remaining_ucr,
                balance.resets_at,
                state.needed_ucr,
            ),
            workspace=balance.workspace_name,
            needed_ucr=needed,
            available_ucr=balance.remaining_ucr,
            resets_at=balance.resets_at,
        )
    if state is not None and state.stopped:
        guard.resume(workspace_id)  # credits are back and nothing told the guard yet
    return None


def _day_cap_refusal(guard: GuardPort, workspace_id: str, workflow: str) -> BudgetExceeded | None:
    """The workflow's day cap is spent, or a step crossing it stopped the workflow today."""
    name = guard.workspace_name(workspace_id)
    over = guard.stop_for_day_cap(workspace_id, workflow, name)
    if over is not None:
        return over
    state = guard.state(workspace_id, workflow)
    if state is None or not state.stopped or state.cause is not Cause.BUDGET_DAY:
        return None
    if guard.resume(workspace_id, scope=workflow):  # a new day, or a raised cap
        return None
    return BudgetExceeded(
        state.reason or day_budget_spent(workflow),
        workspace=name,
        workflow=workflow,
        cause=Cause.BUDGET_DAY.value,
        needed_ucr=state.needed_ucr or 0,
        allowed_ucr=0,
        until=state.until or guard.clock(),
    )


def _bind_if_unbound(
    guard: GuardPort, deployment_id: str, workspace_id: str, workflow: str
) -> None:
    """A deployment made outside ``spojit deploy`` is bound the first time it runs, so the
    guard can pause it too."""
    if store.binding_of(guard.sa, deployment_id) is not None:
        return
    try:
        with prefect_api.client() as prefect:
            found = prefect_api.read_deployment(prefect, deployment_id)
    except PrefectUnavailable:
        return
    if found is not None:
        guard.bind(deployment_id, workspace_id=workspace_id, workflow=workflow, name=found.name)
