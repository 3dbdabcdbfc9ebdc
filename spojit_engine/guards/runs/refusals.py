"""A run refused for credits, as admission and reservations both record it.

``RunFacts`` is what the gate knows of a flow run (from Prefect's run context and our tags);
``refused_state`` is the one state a refused run ends in (``Cancelled`` named ``OutOfCredits``,
the refusal as its message and its data, so calling the flow raises it). ``record_refusal``
writes what a refusal at a run's start leaves: the workspace stopped, a schedule's late runs
cancelled, a ``refused`` node call named "credit guard" (so Executions lists it), a webhook run
back in its hook's queue (to replay after the resume), a line in the run's log.
``requeue_untouched_webhook_run`` puts back a webhook run refused at a node before any of it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spojit_engine.db import read_transaction
from spojit_engine.errors import InsufficientCredits
from spojit_engine.guards import prefect_api
from spojit_engine.guards.errors import BudgetExceeded, PrefectUnavailable
from spojit_engine.guards.policy import REFUSED_STATE_NAME, Cause, hook_request_id
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
    from spojit_engine.guards.port import GuardPort

GUARD_NODE = "credit guard"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the gate knows about a flow run, from Prefect's run context and our tags."""

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


def refused_state(refusal: InsufficientCredits) -> Any:
    """The Prefect state a run refused for credits ends in (at its start or part-way)."""
    from prefect.states import Cancelled

    return Cancelled(name=REFUSED_STATE_NAME, message=str(refusal), data=refusal)


def record_refusal(
    guard: GuardPort,
    workspace_id: str,
    workflow: str,
    run: RunFacts,
    refusal: InsufficientCredits,
    *,
    stop_workspace: bool = True,  # False: the caller stopped what it must (reserve.py)
) -> None:
    """Everything a refusal at a run's start leaves behind (see the module docstring)."""
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
    record_usage(guard.sa, _guard_call(guard, workspace_id, workflow, run, refusal))
    if run.kind is TriggerKind.WEBHOOK:
        request_id = hook_request_id(run.tags)
        if request_id is not None:
            guard.hooks.requeue(request_id, run.flow_run_id, str(refusal))
    refusal_log.warn("Refused a %s run: %s", run.kind.value, refusal)


def _guard_call(
    guard: GuardPort, workspace_id: str, workflow: str, run: RunFacts, refusal: InsufficientCredits
) -> UsageRow:
    """The ``refused`` node call named "credit guard" that lists the refusal in Executions."""
    member = next(
        (t[len(MEMBER_TAG) :] for t in sorted(run.tags) if t.startswith(MEMBER_TAG)), None
    )
    return UsageRow(
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
    )


def _refuse_waiting_runs(guard: GuardPort, deployment_id: str, reason: str) -> None:
    """Runs Prefect's scheduler made just before the guard switched the schedule off start
    late; cancel the rest of them now rather than refuse them one by one."""
    try:
        with prefect_api.client() as prefect:
            prefect_api.refuse_waiting_runs(
                prefect, deployment_id, reason, limit=guard.settings.page_size_max
            )
    except PrefectUnavailable as exc:
        guard.note(f"Deployment {deployment_id}: waiting runs not refused: {exc}")


def requeue_untouched_webhook_run(guard: GuardPort, reason: str, node_call: str | None) -> None:
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
