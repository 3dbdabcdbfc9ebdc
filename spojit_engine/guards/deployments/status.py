"""What ``spojit deployments`` shows: each bound deployment's workspace, schedules and whether it
is paused — by the guard (with the reason), by a person, or not at all — and its webhook queue.
Credits are ``Decimal`` here (the facade)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spojit_engine.guards import prefect_api, store
from spojit_engine.guards.budgets import Budget
from spojit_engine.guards.errors import PrefectUnavailable
from spojit_engine.money import ucr_to_credits

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
class WorkflowBudget:
    workspace_id: str
    workflow: str
    max_credits_per_run: Decimal | None
    max_credits_per_day: Decimal | None
    updated_at: datetime

    @classmethod
    def of(cls, b: Budget) -> WorkflowBudget:
        def credits(ucr: int | None) -> Decimal | None:
            return None if ucr is None else ucr_to_credits(ucr)

        return cls(
            b.workspace_id,
            b.workflow,
            credits(b.max_per_run_ucr),
            credits(b.max_per_day_ucr),
            b.updated_at,
        )


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


def deployment_statuses(guard: Guard, workspace_id: str | None) -> list[DeploymentStatus]:
    bindings = store.bindings(guard.sa, workspace_id, limit=guard.settings.page_size_max)
    pauses = store.latest_pauses(guard.sa, [b.deployment_id for b in bindings])
    hooks = {
        h.deployment_id: h.name
        for ws in {b.workspace_id for b in bindings}
        for h in guard.hooks.hooks_of(ws)
    }
    known: dict[tuple[str, str], bool] = {}

    def pending(workspace_id: str, scope: str) -> bool:
        if (workspace_id, scope) not in known:
            known[workspace_id, scope] = guard.resume_pending(workspace_id, scope)
        return known[workspace_id, scope]

    infos: dict[str, prefect_api.DeploymentInfo | None] = {}
    reachable = True
    try:
        with prefect_api.client() as prefect:
            for b in bindings:
                infos[b.deployment_id] = prefect_api.read_deployment(prefect, b.deployment_id)
    except PrefectUnavailable:
        reachable = False
    out = []
    for b in bindings:
        info = infos.get(b.deployment_id)
        mine = pauses.get(b.deployment_id, [])
        schedules = (
            []
            if info is None
            else [s.text + ("" if s.active else " (off)") for s in info.schedules]
        )
        if not reachable:
            status = PAUSED_BY_GUARD if mine else UNKNOWN
        elif info is None:
            status = DELETED
        elif mine:
            status = PAUSED_BY_GUARD
        elif info.paused or (info.schedules and not any(s.active for s in info.schedules)):
            status = PAUSED_BY_PERSON
        elif not info.schedules:
            status = NO_SCHEDULE
        else:
            status = ACTIVE
        reason = mine[0].reason if mine else None
        if status == PAUSED_BY_GUARD and pending(b.workspace_id, mine[0].scope):
            status, reason = RESUME_PENDING, PENDING_REASON
        hook = hooks.get(b.deployment_id)
        out.append(
            DeploymentStatus(
                b.deployment_id,
                b.deployment_name,
                b.workflow,
                b.workspace_id,
                schedules,
                status,
                reason,
                hook,
                guard.hooks.queued_count(hook=hook) if hook else 0,
            )
        )
    return out
