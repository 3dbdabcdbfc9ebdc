"""Switching the schedules of a stopped scope's deployments off, and exactly those back on.

Off: every *active* schedule of the scope's deployments, each one recorded (``guard_pauses``)
with the reason and Prefect's ``updated`` of the schedule right after. A paused deployment, or a
schedule that is already off, was paused by a person: never touched, never recorded — unless the
guard itself holds it off for another scope, then this scope records a hold on it too. The
deployment's auto-scheduled runs no worker took yet are cancelled as ``OutOfCredits`` (Prefect
deletes only the future ones when a schedule goes off).

On: each recorded schedule, unless another open scope still holds it, it was deleted, it is
already on, or a person changed it since (its ``updated`` moved past the recorded one).
Called under the scope's lease (``Guard``), so two processes never do this at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.store import Binding, Pause, ScopeState

# guard_pauses.outcome: what resuming did with a schedule the guard had paused.
RESUMED = "resumed"
CHANGED_BY_PERSON = "changed_by_person"
HELD_BY_OTHER = "held_by_other_scope"
ALREADY_ACTIVE = "already_active"
GONE = "gone"  # the deployment or the schedule was deleted


def pause(
    sa: SAEngine,
    state: ScopeState,
    targets: list[Binding],
    *,
    clock: Callable[[], datetime],
    limit: int,
) -> list[str]:
    """Switch the targets' active schedules off; the deployments it paused."""
    paused: set[str] = set()
    with prefect_api.client() as prefect:
        for binding in targets:
            deployment = prefect_api.read_deployment(prefect, binding.deployment_id)
            if deployment is None or deployment.paused:
                continue  # deleted, or paused by a person: never ours to touch
            for schedule in deployment.schedules:
                record, updated = _switch_off(sa, prefect, state, deployment.id, schedule)
                if not record:
                    continue
                store.add_pause(
                    sa,
                    Pause(
                        0,
                        state.workspace_id,
                        state.scope,
                        deployment.id,
                        schedule.id,
                        binding.workflow,
                        state.reason or "",
                        clock(),
                        updated,
                        None,
                        None,
                    ),
                )
                paused.add(deployment.id)
            if deployment.id in paused:
                when = clock().strftime("%Y-%m-%d %H:%M UTC")
                note = f"at {when}: {state.reason or 'out of credits'}"
                prefect_api.note_pause(prefect, deployment.id, note)
                prefect_api.refuse_waiting_runs(
                    prefect, deployment.id, state.reason or "", limit=limit
                )
    return sorted(paused)


def _switch_off(
    sa: SAEngine,
    prefect: Any,
    state: ScopeState,
    deployment_id: str,
    schedule: prefect_api.ScheduleInfo,
) -> tuple[bool, datetime | None]:
    """Whether this scope records the schedule as its own pause, and Prefect's ``updated`` of
    the schedule once it is off."""
    held = store.open_pauses_of_schedule(sa, deployment_id, schedule.id)
    if any(p.scope == state.scope for p in held):
        return False, None  # already recorded for this scope
    if schedule.active:
        after = prefect_api.set_schedule_active(prefect, deployment_id, schedule.id, False)
        return after is not None, after.updated if after else None
    if held:  # off because the guard holds it for another scope
        return True, schedule.updated
    return False, None  # off because a person switched it off


def resume(
    sa: SAEngine, state: ScopeState, *, clock: Callable[[], datetime], limit: int
) -> list[str]:
    """Switch back on what this scope recorded; the deployments it resumed."""
    pauses = store.open_pauses(sa, state.workspace_id, state.scope, limit=limit)
    if not pauses:
        return []
    resumed: set[str] = set()
    with prefect_api.client() as prefect:
        for recorded in pauses:
            outcome = _switch_on(sa, prefect, recorded)
            store.close_pause(sa, recorded.id, outcome, clock())
            if outcome == RESUMED:
                resumed.add(recorded.deployment_id)
        for deployment_id in resumed:
            prefect_api.note_pause(prefect, deployment_id, None)
    return sorted(resumed)


def _switch_on(sa: SAEngine, prefect: Any, recorded: Pause) -> str:
    held = store.open_pauses_of_schedule(sa, recorded.deployment_id, recorded.schedule_id)
    if any(other.scope != recorded.scope for other in held):
        return HELD_BY_OTHER
    deployment = prefect_api.read_deployment(prefect, recorded.deployment_id)
    schedule = deployment.schedule(recorded.schedule_id) if deployment else None
    if schedule is None:
        return GONE
    if schedule.active:
        return ALREADY_ACTIVE
    paused_at, updated = recorded.schedule_updated_at, schedule.updated
    if paused_at is not None and updated is not None and updated > paused_at:
        return CHANGED_BY_PERSON
    after = prefect_api.set_schedule_active(prefect, recorded.deployment_id, schedule.id, True)
    return RESUMED if after is not None else GONE
