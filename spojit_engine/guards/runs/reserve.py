"""Reserved runs: a run that opted in (``spojit deploy --reserve p95|max``, the tag
``spojit:reserve=p95|max``, or ``Workflow(..., reserve="p95")``) holds its estimate at start as
one reservation (``Engine.reserve_run``); its node charges draw from it, and what is left is
released when the run ends, however it ends (``Engine.close_run_reservation``). The flow's side
is ``flow_run.reserve_run`` and ``flow_run.close``; the rules are here. A run whose reservation
the workspace cannot cover does not start (``refuse``): it ends ``Cancelled`` named
``OutOfCredits`` with one sentence, like any admission refusal — a webhook run goes back to its
hook's queue, and the workflow (its schedules, its webhook queue; not the workspace's other
workflows) is stopped until the balance covers that reservation, so queued work replays after a
top-up. A run that crashes leaves its reservation to expire through the sweeper: what its nodes
recorded stays charged, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from spojit_engine.display import credits_text
from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards.errors import BudgetExceeded, OutOfCredits
from spojit_engine.guards.policy import Cause
from spojit_engine.guards.runs.refusals import RunFacts, record_refusal, refused_state
from spojit_engine.metering.meter.run_context import RESERVE_TAG
from spojit_engine.money import credits_to_ucr_exact

if TYPE_CHECKING:
    from spojit_engine.guards.port import GuardPort

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
    """A reservation held at a run's start; ``flow_run.close`` releases what it has left."""

    flow_run_id: str
    amount: Decimal


def refuse(
    guard: GuardPort, workspace_id: str, run: RunFacts, *, workflow: str, policy: str,
    amount: Decimal, error: InsufficientCredits,
) -> Any:  # fmt: skip
    """The host refused the run's reservation of ``amount``: the run does not start. Stop the
    workflow (not the workspace: cheaper runs may go on) until the balance, or its cap, covers
    this reservation, so its queued webhook requests replay only then (a test run's own cap
    stops that run only); record the refusal; return the run's final state."""
    refusal = _refusal(guard, workspace_id, workflow, policy, amount, error)
    cause = Cause(refusal.cause) if isinstance(refusal, BudgetExceeded) else Cause.CREDITS
    if cause is not Cause.TEST_CAP:
        guard.exhaust(workspace_id, scope=workflow, cause=cause, reason=str(refusal),
                      needed_ucr=credits_to_ucr_exact(amount),
                      until=getattr(refusal, "until", None))  # fmt: skip
    record_refusal(guard, workspace_id, workflow, run, refusal, stop_workspace=False)
    return refused_state(refusal)


def _refusal(
    guard: GuardPort, workspace_id: str, workflow: str, policy: str, amount: Decimal,
    error: InsufficientCredits,
) -> InsufficientCredits:  # fmt: skip
    """What the run is told: the cap's own refusal, or that the workspace cannot cover it."""
    if isinstance(error, BudgetExceeded):
        return cap_refusal(workflow, policy, amount, error)
    name = guard.workspace_name(workspace_id)
    return OutOfCredits(
        refusal_sentence(name, policy, amount, error.available),
        workspace=name,
        needed_ucr=credits_to_ucr_exact(amount),
        available_ucr=credits_to_ucr_exact(error.available, allow_zero=True),
        resets_at=error.resets_at or guard.clock(),
    )
