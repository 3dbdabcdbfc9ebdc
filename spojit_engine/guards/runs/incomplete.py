"""Incomplete runs: a run stopped part-way for credits is kept, and resumes from the refused node.

A run whose metered node is refused (``InsufficientCredits``) ends ``Cancelled`` named
``OutOfCredits`` (``guards/flow_run.py``) and leaves one row here, keyed by the **original**
flow run. Its status runs ``incomplete -> resuming -> resumed`` (and back to ``incomplete`` when a
resumed run is refused again), or ``incomplete -> abandoned``:

- **claim**: a conditional UPDATE moves ``incomplete`` (at ``attempts = n``) to ``resuming`` with
  ``attempts = n + 1``; exactly one caller wins it. The new flow run is created from the
  deployment with the idempotency key ``spojit-resume:{original}:{n + 1}``, so a resumer that dies
  before marking the row ``resumed`` is retried with the same key and Prefect returns the same run.
- **resume**: the new run carries ``spojit:resume-of={original}``. Its nodes' Prefect cache keys
  (and metering keys) are derived from the original run, so nodes that completed are read from
  the results the refused run wrote to Prefect's result store when it was refused
  (``nodes/kept_results.py``) — neither run nor billed again — and the rest run once.
- When credits return (any grant, top-up, renewal or upgrade: the ledger's ``credits_added``),
  the schedule- and webhook-triggered incomplete runs of a workspace the guard lets run resume by
  themselves; other runs resume on request (``spojit executions resume RUN``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import IllegalTransition, InvalidInput, NotFound
from spojit_engine.guards.policy import HOOK_REQUEST_TAG
from spojit_engine.guards.schema import incomplete_runs
from spojit_engine.metering.meter.run_context import (
    CLI_RUN_TAG,
    RESUME_TAG,
    TriggerKind,
    original_run,
)

AUTO_RESUMED = (TriggerKind.SCHEDULE.value, TriggerKind.WEBHOOK.value)
# Tags of the original run a resumed run does not carry (they name that run's own request).
_NOT_CARRIED = (RESUME_TAG, HOOK_REQUEST_TAG, CLI_RUN_TAG)


class RunStatus(StrEnum):
    INCOMPLETE = "incomplete"
    RESUMING = "resuming"
    RESUMED = "resumed"
    ABANDONED = "abandoned"


_ALLOWED = {
    RunStatus.INCOMPLETE: {RunStatus.RESUMING, RunStatus.ABANDONED},
    RunStatus.RESUMING: {RunStatus.RESUMED, RunStatus.INCOMPLETE},
    RunStatus.RESUMED: {RunStatus.INCOMPLETE},
    RunStatus.ABANDONED: set(),
}


def transition(current: RunStatus, wanted: RunStatus) -> RunStatus:
    """``wanted`` if an incomplete run may go there from ``current``; else ``IllegalTransition``."""
    if wanted not in _ALLOWED[current]:
        raise IllegalTransition("An incomplete run", current.value, wanted.value)
    return wanted


class UnknownRun(NotFound):
    code = "unknown_run"

    def __init__(self, flow_run_id: str) -> None:
        super().__init__(f"There is no incomplete run {flow_run_id} in this workspace.")


@dataclass(frozen=True, slots=True)
class IncompleteRun:
    flow_run_id: str  # the original run
    workspace_id: str
    workflow: str
    deployment_id: str | None
    trigger: str
    parameters: dict[str, Any]
    tags: list[str]
    source: str | None
    refused_node: str | None
    reason: str
    needed_ucr: int
    status: RunStatus
    attempts: int
    last_flow_run_id: str
    resumed_flow_run_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def resumes(self) -> str:
        """What happens to the run, or what happened: the one label every listing shows."""
        if self.status is RunStatus.RESUMED:
            return f"resumed as {self.resumed_flow_run_id} (attempt {self.attempts})"
        if self.status is RunStatus.ABANDONED:
            return "abandoned, never resumes"
        if self.status is RunStatus.RESUMING:
            return f"resuming now (attempt {self.attempts})"
        auto = self.trigger in AUTO_RESUMED and self.deployment_id
        return "when credits return" if auto else "on request"

    def resume_tags(self) -> list[str]:
        """The original run's tags (who pays, test or live, the trigger) plus the resume tag."""
        kept = [t for t in self.tags if not t.startswith(_NOT_CARRIED)]
        return [*sorted(set(kept)), RESUME_TAG + self.flow_run_id]


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the flow knew when a node was refused (recorded by ``record``)."""

    flow_run_id: str
    workspace_id: str
    workflow: str
    deployment_id: str | None
    trigger: str
    parameters: dict[str, Any]
    tags: list[str]
    refused_node: str | None
    reason: str
    needed_ucr: int
    source: str | None = None


def _of(row: Any) -> IncompleteRun:
    values = dict(row._mapping)
    values["parameters"] = json.loads(values["parameters"])
    values["tags"] = json.loads(values["tags"])
    values["status"] = RunStatus(values["status"])
    return IncompleteRun(**values)


def _parameters_text(parameters: dict[str, Any]) -> str:
    try:
        return json.dumps(parameters, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (an in-process run's objects): resume needs it
        raise InvalidInput("This run's parameters are not JSON and cannot be kept.") from None


def record(engine: SAEngine, refusal: Refusal, now: datetime) -> IncompleteRun:
    """Keep a refused run as incomplete: a new row for an original run, or the original's row
    back to ``incomplete`` when one of its resumes was refused too."""
    original = original_run(refusal.flow_run_id, refusal.tags)
    r = incomplete_runs.c
    latest = {
        "refused_node": refusal.refused_node,
        "reason": refusal.reason,
        "needed_ucr": refusal.needed_ucr,
        "last_flow_run_id": refusal.flow_run_id,
        "updated_at": now,
    }
    with write_transaction(engine) as conn:
        row = conn.execute(select(r.status).where(r.flow_run_id == original)).one_or_none()
        if row is None:
            conn.execute(
                insert(incomplete_runs).values(
                    flow_run_id=original,
                    workspace_id=refusal.workspace_id,
                    workflow=refusal.workflow,
                    deployment_id=refusal.deployment_id,
                    trigger=refusal.trigger,
                    parameters=_parameters_text(refusal.parameters),
                    tags=json.dumps(sorted(refusal.tags)),
                    source=refusal.source,
                    status=RunStatus.INCOMPLETE.value,
                    attempts=0,
                    created_at=now,
                    **latest,
                )
            )
        elif row.status != RunStatus.INCOMPLETE.value:
            transition(RunStatus(row.status), RunStatus.INCOMPLETE)
            conn.execute(
                update(incomplete_runs)
                .where(r.flow_run_id == original)
                .values(status=RunStatus.INCOMPLETE.value, resumed_flow_run_id=None, **latest)
            )
    return get(engine, original)


def get(engine: SAEngine, flow_run_id: str, workspace_id: str | None = None) -> IncompleteRun:
    """The row of ``flow_run_id`` (the original run, or any run resumed from it)."""
    r = incomplete_runs.c
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(incomplete_runs).where(
                (r.flow_run_id == flow_run_id)
                | (r.last_flow_run_id == flow_run_id)
                | (r.resumed_flow_run_id == flow_run_id)
            )
        ).first()
    if row is None or (workspace_id is not None and row.workspace_id != workspace_id):
        raise UnknownRun(flow_run_id)
    return _of(row)


def listing(
    engine: SAEngine,
    workspace_id: str,
    *,
    statuses: Iterable[RunStatus] = (RunStatus.INCOMPLETE,),
    triggers: Iterable[str] | None = None,
    limit: int,
) -> list[IncompleteRun]:
    """A workspace's incomplete runs in those statuses, oldest first."""
    r = incomplete_runs.c
    query = select(incomplete_runs).where(
        r.workspace_id == workspace_id, r.status.in_([s.value for s in statuses])
    )
    if triggers is not None:
        query = query.where(r.trigger.in_(list(triggers)))
    with read_transaction(engine) as conn:
        rows = conn.execute(query.order_by(r.created_at, r.flow_run_id).limit(limit))
        return [_of(row) for row in rows]


def claim(engine: SAEngine, run: IncompleteRun, now: datetime) -> IncompleteRun | None:
    """Win the next resume of ``run`` (``incomplete -> resuming``); None when another did."""
    transition(run.status, RunStatus.RESUMING)
    r = incomplete_runs.c
    with write_transaction(engine) as conn:
        won = conn.execute(
            update(incomplete_runs)
            .where(
                r.flow_run_id == run.flow_run_id,
                r.status == RunStatus.INCOMPLETE.value,
                r.attempts == run.attempts,
            )
            .values(status=RunStatus.RESUMING.value, attempts=run.attempts + 1, updated_at=now)
        ).rowcount
    return get(engine, run.flow_run_id) if won else None


def mark_resumed(
    engine: SAEngine, run: IncompleteRun, new_run_id: str | None, now: datetime
) -> None:
    """The claimed resume started (``resuming -> resumed``) as ``new_run_id``."""
    transition(run.status, RunStatus.RESUMED)
    r = incomplete_runs.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(incomplete_runs)
            .where(
                r.flow_run_id == run.flow_run_id,
                r.status == RunStatus.RESUMING.value,
                r.attempts == run.attempts,
            )
            .values(status=RunStatus.RESUMED.value, resumed_flow_run_id=new_run_id, updated_at=now)
        )


def unclaim(engine: SAEngine, run: IncompleteRun, now: datetime) -> None:
    """A claimed resume could not start (Prefect did not answer): back to ``incomplete``."""
    _move(engine, run, RunStatus.RESUMING, RunStatus.INCOMPLETE, now)


def abandon(engine: SAEngine, run: IncompleteRun, now: datetime) -> IncompleteRun:
    """Give an incomplete run up (it will never resume)."""
    _move(engine, run, RunStatus.INCOMPLETE, RunStatus.ABANDONED, now)
    return get(engine, run.flow_run_id)


def _move(
    engine: SAEngine, run: IncompleteRun, source: RunStatus, target: RunStatus, now: datetime
) -> None:
    """``run`` from ``source`` to ``target``, only if it is still in ``source`` (compare-and-set:
    a run another process moved meanwhile stays where it went)."""
    transition(run.status, target)
    r = incomplete_runs.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(incomplete_runs)
            .where(r.flow_run_id == run.flow_run_id, r.status == source.value)
            .values(status=target.value, updated_at=now)
        )


def waiting_workspaces(engine: SAEngine, limit: int) -> list[str]:
    """Workspaces with schedule- or webhook-triggered runs waiting to resume."""
    r = incomplete_runs.c
    waiting = (RunStatus.INCOMPLETE.value, RunStatus.RESUMING.value)
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(r.workspace_id)
            .where(r.status.in_(waiting), r.trigger.in_(AUTO_RESUMED))
            .distinct()
            .limit(limit)
        )
        return [row.workspace_id for row in rows]


def statuses_of(engine: SAEngine, workspace_id: str, run_ids: list[str]) -> dict[str, str]:
    """Executions' word for runs that were stopped for credits: ``incomplete`` (waiting to
    resume), ``resumed`` or ``abandoned`` — for the original run and the one refused last."""
    if not run_ids:
        return {}
    r = incomplete_runs.c
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(r.flow_run_id, r.last_flow_run_id, r.status).where(
                r.workspace_id == workspace_id,
                r.flow_run_id.in_(run_ids) | r.last_flow_run_id.in_(run_ids),
            )
        ).all()
    found: dict[str, str] = {}
    for row in rows:
        word = "incomplete" if row.status == RunStatus.RESUMING.value else row.status
        found[row.flow_run_id] = found[row.last_flow_run_id] = word
    return found
