"""The guards' pure core: trigger kinds, the state machine, the daily window, the sentences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spojit_engine.errors import IllegalTransition
from spojit_engine.guards.policy import (
    GuardState,
    day_start,
    hook_request_id,
    next_day,
    out_of_credits,
    over_day_budget,
    over_run_budget,
    transition,
)
from spojit_engine.metering.meter.run_context import TriggerKind, classify


@pytest.mark.parametrize(
    ("tags", "created_by", "auto", "kind"),
    [
        ({"spojit:workspace=acme", "auto-scheduled"}, "SCHEDULE", True, TriggerKind.SCHEDULE),
        (set(), None, True, TriggerKind.SCHEDULE),  # auto_scheduled alone says so
        ({"spojit:trigger=webhook"}, None, False, TriggerKind.WEBHOOK),
        (set(), "AUTOMATION", False, TriggerKind.AUTOMATION),
        (set(), None, False, TriggerKind.MANUAL),  # through the API or the UI
        (set(), "USER", False, TriggerKind.MANUAL),
        ({"spojit:test"}, "SCHEDULE", True, TriggerKind.TEST),  # a test run is a test run
        ({"spojit:test", "spojit:trigger=webhook"}, None, False, TriggerKind.TEST),
        ({"spojit:trigger=webhook"}, "AUTOMATION", False, TriggerKind.WEBHOOK),
    ],
)
def test_trigger_kinds(
    tags: set[str], created_by: str | None, auto: bool, kind: TriggerKind
) -> None:
    assert classify(tags, created_by_type=created_by, auto_scheduled=auto) is kind


def test_hook_request_ids() -> None:
    assert hook_request_id({"spojit:hook-request=42", "x"}) == 42
    assert hook_request_id({"spojit:hook-request=nope"}) is None
    assert hook_request_id(set()) is None


def test_the_state_machine_allows_only_its_transitions() -> None:
    ok, exhausted, resuming = GuardState.OK, GuardState.EXHAUSTED, GuardState.RESUMING
    assert transition("g", ok, exhausted) is exhausted
    assert transition("g", exhausted, resuming) is resuming
    assert transition("g", resuming, ok) is ok
    assert transition("g", resuming, exhausted) is exhausted  # ran dry again mid-resume
    for current, wanted in [(ok, resuming), (exhausted, ok), (ok, ok), (exhausted, exhausted)]:
        with pytest.raises(IllegalTransition, match=f"g cannot go from {current} to {wanted}"):
            transition("g", current, wanted)


def test_the_day_is_utc_and_half_open() -> None:
    late = datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC)
    assert day_start(late) == datetime(2026, 11, 28, tzinfo=UTC)
    assert next_day(late) == datetime(2026, 11, 29, tzinfo=UTC)
    assert day_start(next_day(late)) == next_day(late)


def test_sentences_carry_the_numbers_and_what_to_do() -> None:
    reset = datetime(2026, 12, 1, tzinfo=UTC)
    assert out_of_credits("acme", 0, reset) == (
        "Out of credits: workspace acme has 0.00 credits; top up or wait for the reset on "
        "2026-12-01."
    )
    assert out_of_credits("acme", -5_000_000, reset).startswith(
        "Out of credits: workspace acme has 0.00 credits;"
    )
    assert out_of_credits("acme", 300_000, reset, 1_000_000) == (
        "Out of credits: workspace acme has 0.30 credits, less than the 1.00 its last refused "
        "step needed; top up or wait for the reset on 2026-12-01."
    )
    assert over_run_budget("leads", 5_000_000, 4_500_000, 1_000_000).startswith(
        "Budget cap: workflow leads may spend 5.00 credits per run; this run has spent 4.50 and "
        "its next step needs 1.00."
    )
    assert over_day_budget("leads", 10_000_000, 10_000_000, 0, reset) == (
        "Budget cap: workflow leads has spent 10.00 of its 10.00 credits for 2026-11-30 (UTC); "
        "it resumes on 2026-12-01 or when max_credits_per_day is raised."
    )
