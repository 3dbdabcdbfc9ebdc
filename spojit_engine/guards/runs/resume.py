"""Stopping a run for credits, and resuming it (the shell around ``runs/incomplete.py``).

- When a node was refused (``flow_run.stopped_for_credits`` asks here): a test run that reached
  its own cap ends ``Cancelled`` named ``CapReached`` (``cap_reached``: it did what was asked; it
  is not kept). Otherwise ``keep_incomplete`` keeps the run as incomplete and it ends
  ``Cancelled`` named ``OutOfCredits`` with the refusal as its one-line message — a state of its
  own, not ``Failed`` with a traceback. ``Cancelled`` rather than ``Paused``: a Prefect
  ``Paused`` run waits in its process (or is suspended and re-run by its deployment) and fails
  when its pause times out; a run stopped for credits may wait days, and resumes as a new run
  that reads the finished nodes from Prefect's result store (written at the refusal). A
  webhook run refused before any node ran is already back in its hook's queue (``requeued``)
  and is not kept twice.
- ``Resumer`` starts resumes: by itself for schedule- and webhook-triggered runs of deployments
  when credits return (the ledger's ``credits_added``, and the renewals flow's reconcile), on
  request (``Engine.resume_run``) for any run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from spojit_engine.errors import Conflict, InsufficientCredits, InvalidInput
from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.errors import PrefectUnavailable
from spojit_engine.guards.policy import Cause, hook_request_id
from spojit_engine.guards.runs import incomplete, refusal_log
from spojit_engine.guards.runs.incomplete import AUTO_RESUMED, IncompleteRun, Refusal, RunStatus
from spojit_engine.guards.runs.refusals import RunFacts
from spojit_engine.guards.schema import WORKSPACE_SCOPE
from spojit_engine.metering.meter.run_context import TriggerKind
from spojit_engine.metering.store.usage import read_usage
from spojit_engine.money import credits_to_ucr_exact

if TYPE_CHECKING:
    from spojit_engine.guards.port import GuardPort
    from spojit_engine.metering.meter.runtime import RuntimeHost

log = logging.getLogger(__name__)

CAP_REACHED_STATE = "CapReached"  # a test run stopped at its own max_credits
_source: ContextVar[str | None] = ContextVar("spojit_run_source", default=None)


@contextmanager
def run_source(spec: str) -> Iterator[None]:
    """Runs started in this block load their workflow from ``spec`` (``spojit run FLOW``), so
    ``spojit executions resume`` can find it again."""
    token = _source.set(spec)
    try:
        yield
    finally:
        _source.reset(token)


class ResumableWorkflow(Protocol):
    """What resuming a run here needs of its workflow (a ``nodes.Workflow``: guards sit below
    nodes): its name, and its Prefect flow to run."""

    @property
    def name(self) -> str: ...

    @property
    def flow(self) -> Any: ...  # a prefect.Flow (imported lazily everywhere)


@dataclass(frozen=True, slots=True)
class ResumeStarted:
    original_flow_run_id: str
    flow_run_id: str | None  # the new run (None: an in-process run whose id Prefect did not give)
    attempt: int
    state: str | None  # the new run's final state name when it ran here; None when queued


def _refused_node(guard: GuardPort, flow_run_id: str) -> str | None:
    rows = read_usage(guard.sa, flow_run_id=flow_run_id, limit=guard.settings.page_size_max)
    return next((r.node_name for r in rows if r.status == "refused"), None)


def requeued(guard: GuardPort, run: RunFacts) -> bool:
    """A webhook run refused before anything of it ran went back to its hook's queue (it is
    not kept twice)."""
    request_id = hook_request_id(run.tags)
    return (
        run.kind is TriggerKind.WEBHOOK
        and request_id is not None
        and guard.hooks.is_queued(request_id)
    )


def cap_reached(error: InsufficientCredits) -> Any | None:
    """A test run that reached its own cap did what was asked: its final state ``CapReached``
    (it is not kept). None for any other refusal."""
    if getattr(error, "cause", None) != Cause.TEST_CAP.value:
        return None
    from prefect.states import Cancelled

    refusal_log.warn("%s", str(error))
    return Cancelled(name=CAP_REACHED_STATE, message=str(error), data=error)


def keep_incomplete(
    guard: GuardPort, workspace_id: str, workflow: str, run: RunFacts, error: InsufficientCredits,
    *, parameters: dict[str, Any],
) -> IncompleteRun:  # fmt: skip
    """Keep a run whose node was refused as incomplete (``InvalidInput`` when its parameters
    are not JSON: it cannot be kept), and say in its log how it resumes."""
    kept = incomplete.record(
        guard.sa,
        Refusal(
            flow_run_id=run.flow_run_id,
            workspace_id=workspace_id,
            workflow=workflow,
            deployment_id=run.deployment_id,
            trigger=run.kind.value,
            parameters=parameters,
            tags=sorted(run.tags),
            refused_node=_refused_node(guard, run.flow_run_id),
            reason=str(error),
            needed_ucr=credits_to_ucr_exact(error.needed, allow_zero=True),
            source=_source.get(),
        ),
        guard.clock(),
    )
    how = (
        "it resumes from there by itself when credits return"
        if kept.trigger in AUTO_RESUMED and kept.deployment_id
        else f"resume it from there with `spojit executions resume {kept.flow_run_id}`"
    )
    refusal_log.warn(
        "Stopped for credits at node %s: %s Kept as incomplete; %s.", kept.refused_node, error, how
    )
    return kept


class Resumer:
    def __init__(self, guard: GuardPort) -> None:
        self.guard = guard
        self.sa = guard.sa
        self.clock = guard.clock

    @property
    def _limit(self) -> int:
        return self.guard.settings.page_size_max

    def _may_run(self, run: IncompleteRun) -> bool:
        if self.guard.stopped_reason(run.workspace_id, run.workflow) is not None:
            return False
        balance = self.guard.balance_record(run.workspace_id, bring_up_to_date=False)
        return balance.remaining_ucr >= max(run.needed_ucr, 1)

    def on_credits_added(self, workspace_id: str) -> None:
        """The ledger's observer: credits came back to the workspace. Workflows stopped because
        a reservation did not fit resume first (the guard's own observer resumes the workspace)."""
        for state in store.stopped_states(self.sa, workspace_id, limit=self._limit):
            if state.scope != WORKSPACE_SCOPE and state.cause is Cause.CREDITS:
                self.guard.resume(workspace_id, scope=state.scope)
        self.resume_due(workspace_id)

    def resume_due(self, workspace_id: str) -> int:
        """Resume the workspace's schedule- and webhook-triggered incomplete runs of deployments
        (and finish resumes whose resumer died); returns how many started."""
        runs = incomplete.listing(
            self.sa,
            workspace_id,
            statuses=(RunStatus.INCOMPLETE, RunStatus.RESUMING),
            triggers=AUTO_RESUMED,
            limit=self._limit,
        )
        started = 0
        for run in runs:
            if run.deployment_id is None or not self._may_run(run):
                continue
            try:
                started += self._start_from_deployment(run) is not None
            except PrefectUnavailable as exc:
                self.guard.note(f"Run {run.flow_run_id}: not resumed yet: {exc}")
                break
        return started

    def reconcile(self) -> int:
        """The renewals flow: resume what is due in every workspace with incomplete runs."""
        return sum(
            self.resume_due(ws) for ws in incomplete.waiting_workspaces(self.sa, self._limit)
        )

    def _start_from_deployment(self, run: IncompleteRun) -> ResumeStarted | None:
        """Claim the run's next resume (or retry a claimed one) and create it in Prefect."""
        if run.status is RunStatus.RESUMING:
            claimed: IncompleteRun | None = run
        else:
            claimed = incomplete.claim(self.sa, run, self.clock())
        if claimed is None or claimed.deployment_id is None:
            return None  # another process won this resume
        with prefect_api.client() as prefect:
            new_id = prefect_api.create_run(
                prefect,
                claimed.deployment_id,
                parameters=claimed.parameters,
                tags=claimed.resume_tags(),
                idempotency_key=f"spojit-resume:{claimed.flow_run_id}:{claimed.attempts}",
            )
        incomplete.mark_resumed(self.sa, claimed, new_id, self.clock())
        return ResumeStarted(claimed.flow_run_id, new_id, claimed.attempts, None)

    def resume(
        self, workspace_id: str, flow_run_id: str, *, workflow: ResumableWorkflow | None = None,
        host: RuntimeHost | None = None,
    ) -> ResumeStarted:  # fmt: skip
        """Resume one incomplete run now: a new run of its deployment, or (a run made outside a
        deployment) ``workflow`` run here, from the node that was refused, its nodes billed
        through ``host`` (the ``Engine`` asking; else the process's runtime)."""
        run = incomplete.get(self.sa, flow_run_id, workspace_id)
        if run.status is not RunStatus.INCOMPLETE:
            where = f" as {run.resumed_flow_run_id}" if run.resumed_flow_run_id else ""
            raise Conflict(
                f"Run {run.flow_run_id} is {run.status.value}{where}; nothing to resume."
            )
        if run.deployment_id is not None and workflow is None:
            started = self._start_from_deployment(run)
            if started is None:
                raise Conflict(f"Run {run.flow_run_id} is being resumed by another process.")
            return started
        if workflow is None:
            raise InvalidInput(
                f"Run {run.flow_run_id} of {run.workflow} was not started from a deployment; "
                "pass its workflow to resume it here."
            )
        if workflow.name != run.workflow:
            raise InvalidInput(f"Run {run.flow_run_id} is of {run.workflow}, not {workflow.name}.")
        claimed = incomplete.claim(self.sa, run, self.clock())
        if claimed is None:
            raise Conflict(f"Run {run.flow_run_id} is being resumed by another process.")
        return self._run_here(claimed, workflow, host)

    def _run_here(
        self, claimed: IncompleteRun, workflow: ResumableWorkflow, host: RuntimeHost | None
    ) -> ResumeStarted:
        from prefect import tags

        from spojit_engine.metering.meter.runtime import Runtime, current_runtime, use_runtime

        runtime = current_runtime()
        if host is not None and runtime.engine is not host:
            runtime = Runtime.create(host, default_workspace=claimed.workspace_id)
        with use_runtime(runtime), tags(*claimed.resume_tags()):
            state = workflow.flow(**claimed.parameters, return_state=True)
        new_id = state.state_details.flow_run_id
        new_id = str(new_id) if new_id else None
        incomplete.mark_resumed(self.sa, claimed, new_id, self.clock())
        return ResumeStarted(claimed.flow_run_id, new_id, claimed.attempts, state.name)
