"""The guards' pure core: the guard state machine, what caused a stop, the daily budget window,
and the sentences a person reads. No database, no Prefect. (Which kind of trigger started a run is
``metering.meter.run_context.classify``: the meter records it too.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from enum import StrEnum

from spojit_engine.display import credits_text
from spojit_engine.errors import IllegalTransition
from spojit_engine.money import ucr_to_credits

# The one Prefect state (type CANCELLED) a run refused for credits ends in, at its start or
# mid-way; its message is the one-line reason.
REFUSED_STATE_NAME = "OutOfCredits"
HOOK_REQUEST_TAG = "spojit:hook-request="


class GuardState(StrEnum):
    """A scope's state: ``OK -> EXHAUSTED -> RESUMING -> OK`` (and back to ``EXHAUSTED`` from
    ``RESUMING`` when credits run out again before a resume finished)."""

    OK = "ok"
    EXHAUSTED = "exhausted"
    RESUMING = "resuming"


_ALLOWED = {
    GuardState.OK: {GuardState.EXHAUSTED},
    GuardState.EXHAUSTED: {GuardState.RESUMING},
    GuardState.RESUMING: {GuardState.OK, GuardState.EXHAUSTED},
}


def transition(what: str, current: GuardState, wanted: GuardState) -> GuardState:
    """``wanted`` if the machine allows it from ``current``; else ``IllegalTransition``."""
    if wanted not in _ALLOWED[current]:
        raise IllegalTransition(what, current.value, wanted.value)
    return wanted


class Cause(StrEnum):
    """Why a scope stopped: the workspace ran out, or a workflow hit one of its caps."""

    CREDITS = "credits"
    BUDGET_RUN = "budget_run"
    BUDGET_DAY = "budget_day"
    TEST_CAP = "test_cap"  # a test run's own max_credits: stops that run, pauses nothing


def hook_request_id(tags: Iterable[str]) -> int | None:
    """The webhook request a run was started for (``spojit:hook-request=ID``), if any."""
    for tag in tags:
        if tag.startswith(HOOK_REQUEST_TAG) and tag[len(HOOK_REQUEST_TAG) :].isdigit():
            return int(tag[len(HOOK_REQUEST_TAG) :])
    return None


# -- the daily budget window (UTC days, half-open) -------------------------------------------------


def day_start(moment: datetime) -> datetime:
    """00:00 UTC of the day holding ``moment`` (``moment`` is UTC-aware)."""
    return datetime.combine(moment.date(), time(0), tzinfo=moment.tzinfo)


def next_day(moment: datetime) -> datetime:
    return day_start(moment) + timedelta(days=1)


# -- sentences -------------------------------------------------------------------------------------


def _credits(ucr: int) -> str:
    return credits_text(ucr_to_credits(ucr))


def out_of_credits(
    workspace: str, available_ucr: int, resets_at: datetime, needed_ucr: int | None = None
) -> str:
    """The refusal a person reads when a workspace cannot pay for a run."""
    has = f"Out of credits: workspace {workspace} has {_credits(max(available_ucr, 0))} credits"
    if needed_ucr is not None and needed_ucr > available_ucr > 0:
        has += f", less than the {_credits(needed_ucr)} its last refused step needed"
    return f"{has}; top up or wait for the reset on {resets_at:%Y-%m-%d}."


def over_run_budget(workflow: str, cap_ucr: int, spent_ucr: int, needed_ucr: int) -> str:
    return (
        f"Budget cap: workflow {workflow} may spend {_credits(cap_ucr)} credits per run; this run "
        f"has spent {_credits(spent_ucr)} and its next step needs {_credits(needed_ucr)}. Raise "
        "max_credits_per_run to let such runs finish; its schedules resume the next day (UTC)."
    )


def over_test_cap(cap_ucr: int, spent_ucr: int, needed_ucr: int) -> str:
    return (
        f"Test-run cap reached: this test run may spend {_credits(cap_ucr)} credits; it has "
        f"spent {_credits(spent_ucr)} and its next step needs {_credits(needed_ucr)}, so it "
        "stopped here."
    )


def over_day_budget(
    workflow: str, cap_ucr: int, spent_ucr: int, needed_ucr: int, until: datetime
) -> str:
    needs = f" and its next step needs {_credits(needed_ucr)}" if needed_ucr else ""
    return (
        f"Budget cap: workflow {workflow} has spent {_credits(spent_ucr)} of its "
        f"{_credits(cap_ucr)} credits for {day_start(until - timedelta(days=1)):%Y-%m-%d} "
        f"(UTC){needs}; it resumes on {until:%Y-%m-%d} or when max_credits_per_day is raised."
    )


def day_budget_spent(workflow: str) -> str:
    """A day-cap stop's refusal when the stop recorded no sentence of its own."""
    return f"Workflow {workflow} has spent its budget for today."
