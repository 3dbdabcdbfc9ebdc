"""Runs whose process died: what they held is given back as soon as Prefect knows them dead.

A worker or flow-run process killed mid-run leaves its flow run ``Running`` and, if it was
inside a metered LLM call or a reserved run, a hold open. Prefect's own zombie handling decides
a run is dead: a flow run started by a worker sends heartbeat events
(``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``) and the automation ``scripts/scale-up.sh`` installs
("Crash zombie flows", Prefect's documented one) marks a run ``Crashed`` when they stop.
Prefect knowing is the signal: ``release_crashed`` finds the open holds whose flow run Prefect
calls ``Crashed``, releases each (a reservation closes; what was drawn stays spent) and marks
the call's usage record ``crashed``, so ``spojit executions`` shows the run crashed, not
``ok``. The ``spojit-renewals`` flow runs it on every pass; without it a hold would wait out
its TTL for the sweeper.

Prefect is asked only about runs that hold something, at most ``limit`` holds a pass; when it
cannot be reached nothing changes (the TTL and the sweeper still bound every hold).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction
from spojit_engine.errors import IllegalTransition
from spojit_engine.guards import prefect_api
from spojit_engine.guards.errors import PrefectUnavailable
from spojit_engine.metering.ledger.reservations import RESERVATION_PREFIX
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.usage import mark_status

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger

CRASHED = "crashed"  # a usage record's status when its run's process died inside it
CRASHED_ERROR = "The flow run crashed: its process died and Prefect marked it Crashed."

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenHold:
    hold_id: int
    workspace_id: str
    flow_run_id: str
    node_call: str | None  # None for a run reservation


def open_holds(sa: SAEngine, limit: int) -> list[OpenHold]:
    """Up to ``limit`` held holds and the flow run each belongs to: an LLM call's hold by its
    node call's usage record, a run reservation by its key (``reserve:{flow_run_id}``); half the
    room for each kind, so many open LLM calls never crowd the reservations out."""
    h, u = schema.holds.c, schema.usage_records.c
    each = max(1, limit // 2)
    calls = (
        select(h.id, h.workspace_id, u.flow_run_id, h.node_call)
        .join_from(schema.holds, schema.usage_records, u.key == h.node_call)
        .where(h.state == "held", u.flow_run_id.is_not(None))
        .order_by(h.id)
        .limit(each)
    )
    reservations = (
        select(h.id, h.workspace_id, h.key)
        .where(h.state == "held", h.key.startswith(RESERVATION_PREFIX))
        .order_by(h.id)
        .limit(each)
    )
    with read_transaction(sa) as conn:
        found = [OpenHold(i, ws, run, call) for i, ws, run, call in conn.execute(calls)]
        found += [
            OpenHold(i, ws, key.removeprefix(RESERVATION_PREFIX), None)
            for i, ws, key in conn.execute(reservations)
        ]
    return found


def _as_uuid(run_id: str) -> UUID | None:
    try:
        return UUID(run_id)
    except ValueError:
        return None


def crashed_runs(flow_run_ids: set[str]) -> set[str]:
    """Which of these flow runs Prefect has marked ``Crashed`` (``PrefectUnavailable`` when it
    is not configured or does not answer)."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    ids = [u for u in map(_as_uuid, sorted(flow_run_ids)) if u is not None]
    if not ids:
        return set()
    crashed = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CRASHED]))
    found: set[str] = set()
    with prefect_api.client() as prefect:
        for first in range(0, len(ids), prefect_api.READ_PAGE_MAX):
            page = ids[first : first + prefect_api.READ_PAGE_MAX]
            runs = prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=page), state=crashed),
                limit=len(page),
            )
            found.update(str(r.id) for r in runs)
    return found


def release_crashed(ledger: Ledger, limit: int) -> list[int]:
    """Release every open hold (up to ``limit``) whose flow run Prefect marked ``Crashed``, and
    mark its call's usage record crashed; returns the holds released."""
    holds = open_holds(ledger.engine, limit)
    if not holds:
        return []
    try:
        crashed = crashed_runs({h.flow_run_id for h in holds})
    except PrefectUnavailable as exc:  # the TTL and the sweeper still bound every hold
        log.warning("Crashed runs not checked: %s", exc)
        return []
    released = []
    for hold in holds:
        if hold.flow_run_id not in crashed:
            continue
        try:
            ledger.release(hold.hold_id)
        except IllegalTransition:  # settled or voided since it was read
            continue
        if hold.node_call is not None:
            mark_status(
                ledger.engine,
                hold.workspace_id,
                hold.node_call,
                status=CRASHED,
                error=CRASHED_ERROR,
            )
        released.append(hold.hold_id)
    return released
