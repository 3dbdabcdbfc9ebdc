"""Admission at flow start, for every kind of trigger.

Prefect hooks cannot refuse a run (they swallow exceptions), and a paused deployment still takes
manual and automation runs, so the refusal happens in the flow body: ``Workflow._body`` calls
``admit_run`` first and returns what it gives back — ``Cancelled`` named ``OutOfCredits`` whose
message says why and what to do, with the error as its data (so calling the flow raises it). In
a worker, Prefect would log that raise as an ERROR with a traceback; ``refusal_log`` turns it
into the one WARNING line it is.

A run is refused when its workspace is stopped (out of credits) and its balance still cannot pay
what was refused, or its workflow's day cap is spent. The ledger stays the authority on a single
debit: a run of a workspace the guard has not seen run dry yet starts, and its first node is
refused atomically (writing nothing) — which is what stops the workspace. A refused run is
recorded as a ``refused`` node call named "credit guard" (so Executions lists it), and a refused
webhook run goes back to its hook's queue, to replay after the resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spojit_engine.db import read_transaction
from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.errors import BudgetExceeded, OutOfCredits, PrefectUnavailable
from spojit_engine.guards.policy import REFUSED_STATE_NAME, Cause, hook_request_id, out_of_credits
from spojit_engine.guards.runs import refusal_log
from spojit_engine.guards.schema import WORKSPACE_SCOPE
from spojit_engine.metering.ledger.replay import find_entry
from spojit_engine.metering.meter.run_context import (
    MEMBER_TAG,
    TEST_TAG,
    TriggerKind,
    classify_flow_run,
)
from spojit_engine.metering.store.usage import UsageRow, read_usage, record_usage

if TYPE_CHECKING:
    from spojit_engine.guards.guard import Guard

GUARD_NODE = "credit guard"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What admission knows about a flow run, from Prefect's run context and our tags."""

    flow_run_id: str
    deployment_id: str | None
    tags: frozenset[str]
    kind: TriggerKind
    name: str | None = None

    @classmethod
    def of(cls, flow_run: Any) -> RunFacts:
        tags = frozenset(flow_run.tags or ())
        deployment = getattr(flow_run, "deployment_id", None)
        return cls(
            str(flow_run.id),
            str(deployment) if deployment else None,
            tags,
            classify_flow_run(flow_run),
            getattr(flow_run, "name", None),
        )


def admit_run(workflow: str) -> Any:
    """At the start of a flow run of ``workflow``: None to go on, else the run's final state."""
    from prefect.context import FlowRunContext

    from spojit_engine.guards.guard import Guard
    from spojit_engine.metering.meter.run_billing import billed_workspace
    from spojit_engine.metering.meter.run_context import current_run
    from spojit_engine.metering.meter.runtime import current_runtime

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    refusal_log.install()
    runtime = current_runtime()
    try:
        workspace_id = billed_workspace(runtime, current_run())[0]
    except InvalidInput:
        return None  # the first node says so, in one sentence
    guard = Guard.of(runtime.engine.ledger)
    refusal = admit(guard, workspace_id, workflow, RunFacts.of(context.flow_run))
    if refusal is None:
        return None
    from prefect.states import Cancelled

    return Cancelled(name=REFUSED_STATE_NAME, message=str(refusal), data=refusal)


def admit(
    guard: Guard, workspace_id: str, workflow: str, run: RunFacts
) -> InsufficientCredits | None:
    """The refusal of this run, or None to admit it (see the module docstring)."""
    if run.deployment_id is not None:
        _bind_if_unbound(guard, run.deployment_id, workspace_id, workflow)
    refusal: InsufficientCredits | None = None
    state = guard.state(workspace_id)
    if state is not None and state.stopped:
        balance = guard.balance_record(workspace_id)  # may renew, and so resume
        state = guard.state(workspace_id)
        needed = max((state.needed_ucr or 1) if state else 1, 1)
        if state is not None and state.stopped and balance.remaining_ucr < needed:
            refusal = OutOfCredits(
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
        elif state is not None and state.stopped:
            guard.resume(workspace_id)  # credits are back and nothing told the guard yet
    if refusal is None:
        refusal = _day_cap_refusal(guard, workspace_id, workflow)
    if refusal is not None:
        _record_refusal(guard, workspace_id, workflow, run, refusal)
    return refusal


def _day_cap_refusal(guard: Guard, workspace_id: str, workflow: str) -> BudgetExceeded | None:
    """The workflow's day cap is spent, or a step crossing it stopped the workflow today."""
    name = guard.workspace_name(workspace_id)
    over = guard.budgets.day_refusal(name, workspace_id, workflow)
    if over is not None:
        guard.exhaust(
            workspace_id,
            scope=workflow,
            cause=Cause.BUDGET_DAY,
            reason=str(over),
            needed_ucr=0,
            until=over.until,
        )
        return over
    state = guard.state(workspace_id, workflow)
    if state is None or not state.stopped or state.cause is not Cause.BUDGET_DAY:
        return None
    if guard.resume(workspace_id, scope=workflow):  # a new day, or a raised cap
        return None
    return BudgetExceeded(
        state.reason or f"Workflow {workflow} has spent its budget for today.",
        workspace=name,
        workflow=workflow,
        cause=Cause.BUDGET_DAY.value,
        needed_ucr=state.needed_ucr or 0,
        allowed_ucr=0,
        until=state.until or guard.clock(),
    )


def _bind_if_unbound(guard: Guard, deployment_id: str, workspace_id: str, workflow: str) -> None:
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


def _record_refusal(
    guard: Guard,
    workspace_id: str,
    workflow: str,
    run: RunFacts,
    refusal: InsufficientCredits,
    *,
    stop_workspace: bool = True,  # False: the caller stopped what it must (reserve.py)
) -> None:
    if stop_workspace and not isinstance(refusal, BudgetExceeded):
        guard.exhaust(
            workspace_id,
            scope=WORKSPACE_SCOPE,
            cause=Cause.CREDITS,
            reason=str(refusal),
            needed_ucr=1,
        )
    if run.kind is TriggerKind.SCHEDULE and run.deployment_id is not None:
        _refuse_waiting_runs(guard, run.deployment_id, str(refusal))
    member = next(
        (t[len(MEMBER_TAG) :] for t in sorted(run.tags) if t.startswith(MEMBER_TAG)), None
    )
    record_usage(
        guard.sa,
        UsageRow(
            key=f"guard:{run.flow_run_id}:admission",
            workspace_id=workspace_id,
            workflow=workflow,
            flow_run_id=run.flow_run_id,
            run_name=run.name,
            trigger=run.kind.value,
            task_run_id=None,
            attempt=1,
            node_name=GUARD_NODE,
            node_type="guard",
            mode=run.kind.value,
            models=None,
            tokens_in=0,
            tokens_out=0,
            tokens_cached=0,
            llm_calls=0,
            credits_ucr=0,
            member_id=member,
            test_run=TEST_TAG in run.tags,
            status="refused",
            error=str(refusal),
            created_at=guard.clock(),
        ),
    )
    if run.kind is TriggerKind.WEBHOOK:
        request_id = hook_request_id(run.tags)
        if request_id is not None:
            guard.hooks.requeue(request_id, run.flow_run_id, str(refusal))
    _log_refusal(run, refusal)


def _refuse_waiting_runs(guard: Guard, deployment_id: str, reason: str) -> None:
    """Runs Prefect's scheduler made just before the guard switched the schedule off start
    late; cancel the rest of them now rather than refuse them one by one."""
    try:
        with prefect_api.client() as prefect:
            prefect_api.refuse_waiting_runs(
                prefect, deployment_id, reason, limit=guard.settings.page_size_max
            )
    except PrefectUnavailable as exc:
        guard.note(f"Deployment {deployment_id}: waiting runs not refused: {exc}")


def _log_refusal(run: RunFacts, refusal: InsufficientCredits) -> None:
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning("Refused a %s run: %s", run.kind.value, refusal)
    except Exception:  # no run logger outside a run: the state message says it all
        pass


def requeue_untouched_webhook_run(guard: Guard, reason: str, node_call: str | None) -> None:
    """A webhook run refused at a node before anything of it ran (no node finished, and the
    refused one's base price was the refused debit) goes back to its queue."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None or node_call is None:
        return
    run = RunFacts.of(context.flow_run)
    request_id = hook_request_id(run.tags)
    if run.kind is not TriggerKind.WEBHOOK or request_id is None:
        return
    done = read_usage(guard.sa, flow_run_id=run.flow_run_id, limit=guard.settings.page_size_max)
    if any(row.status != "refused" or row.credits_ucr for row in done):
        return
    with read_transaction(guard.sa) as conn:
        if find_entry(conn, f"{node_call}:base") is not None:
            return  # the refused node had started: re-running it could repeat what it did
    guard.hooks.requeue(request_id, run.flow_run_id, reason)
