"""What a running ``Workflow`` flow calls of the guards: the only guards module ``nodes/`` imports.

In order, inside the flow body (``nodes/workflow.py``):

1. ``admit_run(workflow)`` first — None to go on, else the run's final state, ``Cancelled`` named
   ``OutOfCredits`` (``runs/admission.py``);
2. ``reserve_run(workflow, payload)`` next — None (no reservation asked), ``Reserved``, or the
   run's final state when the reservation was refused (``runs/reserve.py``); ``close(reserved)``
   in the flow's ``finally`` releases what the reservation has left;
3. ``refused_at_start(workflow, state)`` when 1 or 2 refused the run: a refused resume goes back
   to waiting (``runs/resume.py``);
4. ``stopped_for_credits(workflow, error)`` when a node was refused part-way: the run is kept as
   incomplete, to resume (``runs/resume.py``).

Each reads Prefect's run context and the process's runtime, finds the runtime ledger's ``Guard``,
and hands plain facts to ``runs/``, whose modules know the guard only as ``port.GuardPort``.
Prefect is imported inside the functions: importing this module costs no Prefect.
"""

from __future__ import annotations

import logging
from typing import Any

from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards.guard import Guard
from spojit_engine.guards.runs import admission, refusal_log, reserve, resume
from spojit_engine.guards.runs.refusals import RunFacts, refused_state
from spojit_engine.guards.runs.reserve import Reserved, ReservingWorkflow
from spojit_engine.metering.meter.run_billing import billed_workspace
from spojit_engine.metering.meter.run_context import RESUME_TAG, RunInfo, current_run
from spojit_engine.metering.meter.runtime import current_runtime

__all__ = [
    "Reserved",
    "admit_run",
    "close",
    "refused_at_start",
    "reserve_run",
    "stopped_for_credits",
]

log = logging.getLogger(__name__)


def admit_run(workflow: str) -> Any:
    """At the start of a flow run of ``workflow``: None to go on, else the run's final state."""
    from prefect.context import FlowRunContext

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
    refusal = admission.admit(guard, workspace_id, workflow, RunFacts.of(context.flow_run))
    return None if refusal is None else refused_state(refusal)


def reserve_run(workflow: ReservingWorkflow, payload: Any) -> Reserved | Any | None:
    """At a run's start (after admission): None (no reservation asked), ``Reserved`` (held), or
    the run's final state when the reservation was refused."""
    from prefect.context import FlowRunContext, TagsContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    # The run's tags and those the flow entered (a test deployment's scope, from parameters).
    tags = frozenset(context.flow_run.tags or ()) | TagsContext.get().current_tags
    policy = reserve.policy_of(tags, workflow.reserve)
    if policy is None:
        return None
    runtime = current_runtime()
    host = runtime.engine
    workspace_id = billed_workspace(runtime, current_run())[0]
    run = RunInfo(str(context.flow_run.id), None, 1, workflow.name, tags)
    amount = workflow.reservation(  # a test run's estimate takes its Loop sample
        workspace_id, policy, inputs=payload, test=run.test_run, sample=run.sample
    )
    if amount <= 0:
        return None
    facts = RunFacts.of(context.flow_run)
    try:
        host.reserve_run(
            workspace_id, amount, flow_run_id=facts.flow_run_id, workflow=workflow.name
        )
    except InsufficientCredits as exc:
        return reserve.refuse(Guard.of(host.ledger), workspace_id, facts, workflow=workflow.name,
                              policy=policy, amount=amount, error=exc)  # fmt: skip
    return Reserved(facts.flow_run_id, amount)


def close(reserved: Reserved | None) -> None:
    """The run ended (completed, stopped or failed): release what its reservation has left."""
    if reserved is None:
        return
    current_runtime().engine.close_run_reservation(reserved.flow_run_id)


def refused_at_start(workflow: str, state: Any) -> Any:
    """A run refused before it started (admission, or its reservation): if it was a resume,
    its original goes back to ``incomplete`` (else that resume would be lost); returns ``state``."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    tags = (context.flow_run.tags or ()) if context and context.flow_run else ()
    if not any(t.startswith(RESUME_TAG) for t in tags) or not isinstance(
        state.data, InsufficientCredits
    ):
        return state
    return stopped_for_credits(workflow, state.data, final=state)


def stopped_for_credits(workflow: str, error: InsufficientCredits, *, final: Any = None) -> Any:
    """In a flow run whose node was refused: keep it as incomplete; return its final state
    (``final``, else ``Cancelled`` named ``OutOfCredits``; ``CapReached`` for a test run at its
    own cap, which is not kept)."""
    from prefect.context import FlowRunContext

    reached = resume.cap_reached(error)
    if reached is not None:
        return reached
    state: Any = final or refused_state(error)
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return state
    runtime = current_runtime()
    guard = Guard.of(runtime.engine.ledger)
    facts = RunFacts.of(context.flow_run)
    if resume.requeued(guard, facts):
        refusal_log.warn(
            "%s The webhook request is back in its queue; it replays on resume.", error
        )
        return state
    try:
        workspace_id = billed_workspace(runtime, current_run())[0]
        resume.keep_incomplete(guard, workspace_id, workflow, facts, error,
                               parameters=dict(context.parameters or {}))  # fmt: skip
    except InvalidInput as exc:  # parameters that are not JSON: the run cannot be kept
        log.warning("Run %s stopped for credits and cannot resume: %s", facts.flow_run_id, exc)
    return state
