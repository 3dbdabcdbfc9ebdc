"""Reserved runs: a run that opted in (``spojit deploy --reserve p95|max``, the tag
``spojit:reserve=p95|max``, or ``Workflow(..., reserve="p95")``) holds its estimate at start as
one reservation (``Engine.reserve_run``); its node charges draw from it, and what is left is
released when the run ends, however it ends (``Engine.close_run_reservation``). A run whose
reservation the workspace cannot cover does not start: it ends ``Cancelled`` named ``Refused``
with one sentence, like any admission refusal — a webhook run goes back to its hook's queue, and
the workflow (its schedules, its webhook queue; not the workspace's other workflows) is stopped
until the balance covers that reservation, so queued work replays after a top-up. A run that
crashes leaves its reservation to expire through the sweeper: what its nodes recorded stays
charged, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from spojit_engine.display import credits_text
from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards.errors import BudgetExceeded, OutOfCredits
from spojit_engine.guards.policy import Cause
from spojit_engine.metering.meter.run_context import RESERVE_TAG
from spojit_engine.money import credits_to_ucr_exact

POLICIES = ("p95", "max")


class ReservingWorkflow(Protocol):
    """What a reservation needs of its workflow (a ``nodes.Workflow``: guards sit below nodes)."""

    @property
    def name(self) -> str: ...

    @property
    def reserve(self) -> str | None: ...

    def reservation(
        self, workspace_id: str, policy: str, *, inputs: Any, test: bool, sample: int | None
    ) -> Decimal:
        """Credits one run reserves under ``policy``: its p95 or max estimate."""
        ...


def check_policy(policy: str | None) -> str | None:
    if policy is not None and policy not in POLICIES:
        raise InvalidInput(f"--reserve must be p95 or max, not {policy!r}.")
    return policy


def policy_of(tags: Any, default: str | None) -> str | None:
    """The run's reservation policy: its ``spojit:reserve=`` tag, else the workflow's own."""
    named = [t[len(RESERVE_TAG) :] for t in tags or () if t.startswith(RESERVE_TAG)]
    return check_policy(named[0]) if named else default


def refusal_sentence(workspace: str, policy: str, amount: Decimal, available: Decimal) -> str:
    return (
        f"Not started: this run reserves its {policy} estimate of {credits_text(amount)} "
        f"credits at start and workspace {workspace} has {credits_text(available)} available; "
        "top up, or wait for the reset."
    )


CAP_NAMES = {
    Cause.BUDGET_RUN: "cap per run (max_credits_per_run)",
    Cause.BUDGET_DAY: "cap per day (max_credits_per_day)",
    Cause.TEST_CAP: "test run's max-credits",
}


def cap_refusal(workflow: str, policy: str, amount: Decimal, cap: BudgetExceeded) -> BudgetExceeded:
    """A reservation a cap refused (the workspace could pay it): the cap's own refusal, saying
    so, rather than an out-of-credits one."""
    cause = Cause(cap.cause)
    sentence = (
        f"Not started: this run reserves its {policy} estimate of {credits_text(amount)} "
        f"credits at start and workflow {workflow}'s {CAP_NAMES[cause]} allows "
        f"{credits_text(cap.available)} more; raise the cap, or reserve less."
    )
    return BudgetExceeded(
        sentence, workspace=cap.workspace, workflow=workflow, cause=cause.value,
        needed_ucr=credits_to_ucr_exact(amount),
        allowed_ucr=credits_to_ucr_exact(cap.available, allow_zero=True), until=cap.until,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reserved:
    flow_run_id: str
    amount: Decimal


def reserve_run(workflow: ReservingWorkflow, payload: Any) -> Reserved | Any | None:
    """At a run's start: None (no reservation asked), ``Reserved`` (held), or the run's final
    state when the reservation was refused."""
    from prefect.context import FlowRunContext, TagsContext
    from prefect.states import Cancelled

    from spojit_engine.guards.guard import Guard
    from spojit_engine.guards.runs.admission import REFUSED_STATE_NAME, RunFacts, _record_refusal
    from spojit_engine.metering.meter.run_billing import billed_workspace
    from spojit_engine.metering.meter.run_context import RunInfo, current_run
    from spojit_engine.metering.meter.runtime import current_runtime

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    # The run's tags and those the flow entered (a test deployment's scope, from parameters).
    tags = frozenset(context.flow_run.tags or ()) | TagsContext.get().current_tags
    policy = policy_of(tags, workflow.reserve)
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
        guard = Guard.of(host.ledger)
        name = guard.workspace_name(workspace_id)
        needed_ucr = credits_to_ucr_exact(amount)
        refusal: InsufficientCredits
        if isinstance(exc, BudgetExceeded):
            refusal = cap_refusal(workflow.name, policy, amount, exc)
        else:
            refusal = OutOfCredits(
                refusal_sentence(name, policy, amount, exc.available),
                workspace=name,
                needed_ucr=needed_ucr,
                available_ucr=credits_to_ucr_exact(exc.available, allow_zero=True),
                resets_at=exc.resets_at or guard.clock(),
            )
        # The workflow (not the workspace: cheaper runs may go on) is stopped until the balance
        # (or its cap) covers this reservation, so its queued webhook requests replay only then;
        # a test run's own cap stops that run only.
        cause = Cause(refusal.cause) if isinstance(refusal, BudgetExceeded) else Cause.CREDITS
        if cause is not Cause.TEST_CAP:
            guard.exhaust(workspace_id, scope=workflow.name, cause=cause, reason=str(refusal),
                          needed_ucr=needed_ucr, until=getattr(refusal, "until", None))  # fmt: skip
        _record_refusal(guard, workspace_id, workflow.name, facts, refusal, stop_workspace=False)
        return Cancelled(name=REFUSED_STATE_NAME, message=str(refusal), data=refusal)
    return Reserved(facts.flow_run_id, amount)


def close(reserved: Reserved | None) -> None:
    """The run ended (completed, stopped or failed): release what its reservation has left."""
    if reserved is None:
        return
    from spojit_engine.metering.meter.runtime import current_runtime

    current_runtime().engine.close_run_reservation(reserved.flow_run_id)
