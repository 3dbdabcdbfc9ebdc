"""The guards' one door to the Prefect API (imported lazily; sync client). Prefect's errors are
wrapped where they enter: a missing or silent API is ``PrefectUnavailable``; a deployment or
schedule that no longer exists is ``None`` / ``False``, not an error.

The API is used only when it is configured (``PREFECT_API_URL``) or this code runs inside a
Prefect flow or task run (whose server is already up): the guard never starts Prefect's local
server as a side effect of, say, a top-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from spojit_engine.guards.errors import PrefectUnavailable
from spojit_engine.guards.policy import REFUSED_STATE_NAME

log = logging.getLogger(__name__)

EVENT_EXHAUSTED = "spojit.credits.exhausted"
EVENT_RESUMED = "spojit.credits.resumed"
READ_PAGE_MAX = 200  # the most flow runs Prefect's API returns at once


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    id: str
    active: bool
    updated: datetime | None
    text: str  # "every 30s", "cron 0 6 * * * (UTC)"


@dataclass(frozen=True, slots=True)
class DeploymentInfo:
    id: str
    name: str
    paused: bool
    schedules: tuple[ScheduleInfo, ...]
    tags: tuple[str, ...]

    def schedule(self, schedule_id: str) -> ScheduleInfo | None:
        return next((s for s in self.schedules if s.id == schedule_id), None)


def configured() -> bool:
    """Is there a Prefect API to talk to without starting one?"""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value()) or (
        FlowRunContext.get() is not None or TaskRunContext.get() is not None
    )


@contextmanager
def client() -> Iterator[Any]:
    """A sync Prefect client; any failure to reach the API becomes ``PrefectUnavailable``."""
    if not configured():
        raise PrefectUnavailable(
            "No Prefect API is configured; set PREFECT_API_URL to your Prefect server "
            "(`prefect server start`) and try again."
        )
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        with get_client(sync_client=True) as prefect:
            yield prefect
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise PrefectUnavailable(f"The Prefect API did not answer: {reason}.") from exc


def _plain(moment: datetime | None) -> datetime | None:
    """A standard-library UTC datetime (Prefect hands out pendulum ones), to the microsecond."""
    if moment is None:
        return None
    t = moment.astimezone(UTC)
    return datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=UTC)


def describe(schedule: Any) -> str:
    """A schedule as a person reads it."""
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        seconds = int(interval.total_seconds())
        return f"every {seconds}s" if seconds < 120 else f"every {seconds // 60}min"
    cron = getattr(schedule, "cron", None)
    if cron is not None:
        return f"cron {cron} ({getattr(schedule, 'timezone', None) or 'UTC'})"
    rrule = getattr(schedule, "rrule", None)
    return f"rrule {rrule}" if rrule is not None else type(schedule).__name__


def read_deployment(prefect: Any, deployment_id: str) -> DeploymentInfo | None:
    """The deployment and its schedules, or None when it was deleted."""
    from prefect.exceptions import ObjectNotFound

    try:
        found = prefect.read_deployment(UUID(deployment_id))
    except ObjectNotFound:
        return None
    schedules = tuple(
        ScheduleInfo(str(s.id), bool(s.active), _plain(s.updated), describe(s.schedule))
        for s in found.schedules or ()
    )
    return DeploymentInfo(
        str(found.id), found.name, bool(found.paused), schedules, tuple(found.tags or ())
    )


PAUSE_NOTE_MARK = "Paused by the spojit credit guard"


def with_pause_note(description: str | None, note: str | None) -> str:
    """``description`` with the guard's note as its first line (``note`` None: without it), so
    `prefect deployment inspect` and the Prefect UI say when and why the guard paused it."""
    text = description or ""
    if text.startswith(PAUSE_NOTE_MARK):
        _, _, text = text.partition("\n\n")
    if note is None:
        return text
    return f"{PAUSE_NOTE_MARK} {note}" + (f"\n\n{text}" if text else "")


def note_pause(prefect: Any, deployment_id: str, note: str | None) -> None:
    """Put the guard's note on the deployment's description (``note`` None: take it off)."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        found = prefect.read_deployment(UUID(deployment_id))
        wanted = with_pause_note(found.description, note)
        if wanted != (found.description or ""):
            prefect.update_deployment(UUID(deployment_id), DeploymentUpdate(description=wanted))
    except ObjectNotFound:
        return


def set_schedule_active(
    prefect: Any, deployment_id: str, schedule_id: str, active: bool
) -> ScheduleInfo | None:
    """Switch one schedule on or off; the schedule as it is afterwards, None if it is gone.
    Switching one off also deletes the deployment's future auto-scheduled runs (Prefect does)."""
    from prefect.exceptions import ObjectNotFound

    try:
        prefect.update_deployment_schedule(UUID(deployment_id), UUID(schedule_id), active=active)
    except ObjectNotFound:
        return None
    after = read_deployment(prefect, deployment_id)
    return after.schedule(schedule_id) if after else None


def refuse_waiting_runs(prefect: Any, deployment_id: str, message: str, *, limit: int) -> int:
    """Cancel (as ``OutOfCredits``) the deployment's auto-scheduled runs that no worker took yet.
    Switching a schedule off deletes only future ones; these are the late ones."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    refused = kept = 0
    while refused + kept < limit:
        page = prefect.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            limit=READ_PAGE_MAX,
            offset=kept,  # the ones cancelled leave the filter; the ones kept stay in it
        )
        for run in page:
            if run.auto_scheduled and not run.run_count:
                refusal: Any = Cancelled(name=REFUSED_STATE_NAME, message=message)
                prefect.set_flow_run_state(run.id, refusal)
                refused += 1
            else:
                kept += 1
        if len(page) < READ_PAGE_MAX:
            break
    return refused


def create_run(
    prefect: Any,
    deployment_id: str,
    *,
    parameters: dict[str, Any],
    tags: list[str],
    idempotency_key: str,
) -> str:
    """A flow run of the deployment; the same ``idempotency_key`` returns the same run."""
    run = prefect.create_flow_run_from_deployment(
        UUID(deployment_id), parameters=parameters, tags=tags, idempotency_key=idempotency_key
    )
    return str(run.id)


UNREACHABLE, SERVER_ERROR, REFUSED = "unreachable", "server error", "refused"


def start_failure(exc: BaseException) -> str:
    """Why a run could not be started: ``UNREACHABLE`` (no answer: Prefect is down, so nothing
    can start; wait), ``SERVER_ERROR`` (Prefect answered 5xx, 408 or 429: try again, a few
    times), or ``REFUSED`` (Prefect refused this very request — a 4xx, a deleted deployment —
    or it could not even be sent: it never will start)."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return SERVER_ERROR if status >= 500 or status in (408, 429) else REFUSED
    if isinstance(exc, httpx.RequestError | OSError):
        return UNREACHABLE
    return REFUSED


def emit(
    event: str,
    *,
    workspace_id: str,
    workspace: str,
    payload: dict[str, Any],
    deployment_ids: list[str],
) -> None:
    """A Prefect event about a workspace, for automations to react to; best effort."""
    try:
        if not configured():
            return
        from prefect.events import emit_event

        emit_event(
            event=event,
            resource={
                "prefect.resource.id": f"spojit.workspace.{workspace_id}",
                "prefect.resource.name": workspace,
            },
            related=[
                {
                    "prefect.resource.id": f"prefect.deployment.{d}",
                    "prefect.resource.role": "deployment",
                }
                for d in deployment_ids
            ],
            payload=payload,
        )
    except Exception as exc:  # an event is a signal, never a reason to fail the caller
        log.info("Could not emit %s for workspace %s: %s", event, workspace_id, exc)
