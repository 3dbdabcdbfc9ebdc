"""What ``spojit deployments`` shows: each bound deployment's workspace, schedules and whether it
is paused — by the guard (with the reason), by a person, or not at all — and its webhook queue;
and what the billing page's banner shows: what the guard has paused in a workspace, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import TYPE_CHECKING

from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.errors import PrefectUnavailable
from spojit_engine.guards.store import Binding

if TYPE_CHECKING:
    from spojit_engine.guards.guard import Guard

ACTIVE = "active"
PAUSED_BY_GUARD = "paused by the guard"
RESUME_PENDING = "resume pending"
PENDING_REASON = (
    "credits are back; the guard resumes it within seconds (spojit serve) or at the next "
    "spojit-renewals run"
)
PAUSED_BY_PERSON = "paused by a person"
NO_SCHEDULE = "no schedule"
DELETED = "deleted in Prefect"
UNKNOWN = "unknown (Prefect did not answer)"


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    deployment_id: str
    name: str
    workflow: str
    workspace_id: str
    schedules: list[str]  # "every 30s (off)"
    status: str  # one of the constants above
    reason: str | None  # why the guard paused it
    webhook: str | None  # the hook's name, if it has one
    queued: int  # webhook requests waiting
    dead_letters: int = 0  # webhook requests that failed for good (kept for the operator)
    dead_letter_reason: str | None = None  # the latest one's: "request 12: Prefect refused (…)"


def deployment_statuses(guard: Guard, workspace_id: str | None) -> list[DeploymentStatus]:
    """Every deployment bound to ``workspace_id`` (None: to any workspace), as it stands."""
    bindings = store.bindings(guard.sa, workspace_id, limit=guard.settings.page_size_max)
    pauses = store.latest_pauses(guard.sa, [b.deployment_id for b in bindings])
    hooks = {
        h.deployment_id: h.name
        for ws in {b.workspace_id for b in bindings}
        for h in guard.hooks.hooks_of(ws)
    }
    pending = cache(guard.resume_pending)  # one read per (workspace, scope)
    reason_of = cache(partial(_reason_now, guard))
    infos, reachable = _read_deployments(bindings)
    out = []
    for b in bindings:
        info = infos.get(b.deployment_id)
        mine = pauses.get(b.deployment_id, [])
        status = _status(info, bool(mine), reachable=reachable)
        reason = reason_of(b.workspace_id, mine[0].scope, mine[0].reason) if mine else None
        if status == PAUSED_BY_GUARD and pending(b.workspace_id, mine[0].scope):
            status, reason = RESUME_PENDING, PENDING_REASON
        hook = hooks.get(b.deployment_id)
        dead, dead_reason = guard.hooks.dead_letters(hook) if hook else (0, None)
        out.append(
            DeploymentStatus(
                b.deployment_id,
                b.deployment_name,
                b.workflow,
                b.workspace_id,
                _schedule_texts(info),
                status,
                reason,
                hook,
                guard.hooks.queued_count(hook=hook) if hook else 0,
                dead,
                dead_reason,
            )
        )
    return out


def _reason_now(guard: Guard, workspace_id: str, scope: str, recorded: str) -> str:
    """Why the scope's pause holds, with today's figures (the one the pause recorded when the
    scope is no longer stopped and another scope holds the schedule)."""
    state = guard.state(workspace_id, scope)
    return guard.reason_now(state) if state is not None and state.stopped else recorded


def _read_deployments(
    bindings: list[Binding],
) -> tuple[dict[str, prefect_api.DeploymentInfo | None], bool]:
    """Each bound deployment as Prefect has it (None: deleted), as far as Prefect answered; and
    whether it answered to the end."""
    infos: dict[str, prefect_api.DeploymentInfo | None] = {}
    try:
        with prefect_api.client() as prefect:
            for b in bindings:
                infos[b.deployment_id] = prefect_api.read_deployment(prefect, b.deployment_id)
    except PrefectUnavailable:
        return infos, False
    return infos, True


def _schedule_texts(info: prefect_api.DeploymentInfo | None) -> list[str]:
    if info is None:
        return []
    return [s.text + ("" if s.active else " (off)") for s in info.schedules]


def _status(info: prefect_api.DeploymentInfo | None, guard_paused: bool, *, reachable: bool) -> str:
    """One of the constants above (``RESUME_PENDING`` is decided by the caller)."""
    if not reachable:
        return PAUSED_BY_GUARD if guard_paused else UNKNOWN
    if info is None:
        return DELETED
    if guard_paused:
        return PAUSED_BY_GUARD
    if info.paused or (info.schedules and not any(s.active for s in info.schedules)):
        return PAUSED_BY_PERSON
    if not info.schedules:
        return NO_SCHEDULE
    return ACTIVE


@dataclass(frozen=True, slots=True)
class PausedWork:
    """A scope the guard has stopped: the whole workspace (``workflow`` None) or one workflow."""

    workflow: str | None
    cause: str | None  # policy.Cause's value: credits, budget_run, budget_day
    reason: str  # the sentence the guard recorded
    since: datetime | None
    deployments: list[str]  # the names of the deployments whose schedules it switched off
    resume_pending: bool  # what stopped it is gone; the guard is switching them back on


def paused_work(guard: Guard, workspace_id: str) -> list[PausedWork]:
    """What the guard has stopped in ``workspace_id``, from its own records only (no call to
    Prefect: a page shows it on every load)."""
    limit = guard.settings.page_size_max
    names = {
        b.deployment_id: b.deployment_name
        for b in store.bindings(guard.sa, workspace_id, limit=limit)
    }
    out = []
    for state in store.stopped_states(guard.sa, workspace_id, limit=limit):
        pauses = store.open_pauses(guard.sa, workspace_id, state.scope, limit=limit)
        out.append(
            PausedWork(
                state.scope or None,
                state.cause.value if state.cause else None,
                guard.reason_now(state),
                state.since,
                sorted({names.get(p.deployment_id, p.deployment_id) for p in pauses}),
                guard.resume_pending(workspace_id, state.scope),
            )
        )
    return out
