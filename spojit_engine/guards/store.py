"""The guards' rows: deployment bindings, the state of each (workspace, scope), the schedules the
guard paused, and the leases that serialise pausing and resuming across processes.

A lease is a conditional UPDATE (``lease_owner`` / ``lease_until``) that exactly one caller wins;
it is held only while the guard talks to Prefect, never while a ledger transaction is open, and
it expires by itself if its holder dies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.guards.policy import Cause, GuardState, transition
from spojit_engine.guards.schema import deployment_bindings, guard_pauses, guard_states

# -- bindings -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    deployment_id: str
    workspace_id: str
    workflow: str
    deployment_name: str


def bind(engine: SAEngine, binding: Binding, now: datetime) -> None:
    """Record (or move) a deployment's workspace and workflow."""
    b = deployment_bindings.c
    values = {
        "workspace_id": binding.workspace_id,
        "workflow": binding.workflow,
        "deployment_name": binding.deployment_name,
    }
    with write_transaction(engine) as conn:
        changed = conn.execute(
            update(deployment_bindings)
            .where(b.deployment_id == binding.deployment_id)
            .values(**values)
        ).rowcount
        if not changed:
            conn.execute(
                insert(deployment_bindings).values(
                    deployment_id=binding.deployment_id, created_at=now, **values
                )
            )


def binding_of(engine: SAEngine, deployment_id: str) -> Binding | None:
    b = deployment_bindings.c
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(b.deployment_id, b.workspace_id, b.workflow, b.deployment_name).where(
                b.deployment_id == deployment_id
            )
        ).one_or_none()
    return None if row is None else Binding(*row)


def bindings(
    engine: SAEngine, workspace_id: str | None = None, workflow: str | None = None, *, limit: int
) -> list[Binding]:
    b = deployment_bindings.c
    query = select(b.deployment_id, b.workspace_id, b.workflow, b.deployment_name)
    if workspace_id is not None:
        query = query.where(b.workspace_id == workspace_id)
    if workflow is not None:
        query = query.where(b.workflow == workflow)
    with read_transaction(engine) as conn:
        rows = conn.execute(query.order_by(b.created_at, b.deployment_id).limit(limit))
        return [Binding(*row) for row in rows]


# -- states ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScopeState:
    workspace_id: str
    scope: str
    state: GuardState
    cause: Cause | None
    reason: str | None
    needed_ucr: int | None
    since: datetime | None
    until: datetime | None
    pauses_applied_at: datetime | None

    @property
    def stopped(self) -> bool:
        return self.state is not GuardState.OK


_STATE_COLUMNS = (
    "workspace_id",
    "scope",
    "state",
    "cause",
    "reason",
    "needed_ucr",
    "since",
    "until",
    "pauses_applied_at",
)


def _state_of(row: Any) -> ScopeState:
    values = dict(zip(_STATE_COLUMNS, row, strict=True))
    values["state"] = GuardState(values["state"])
    values["cause"] = Cause(values["cause"]) if values["cause"] else None
    return ScopeState(**values)


def read_state(engine: SAEngine, workspace_id: str, scope: str) -> ScopeState | None:
    s = guard_states.c
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(*(s[c] for c in _STATE_COLUMNS)).where(
                s.workspace_id == workspace_id, s.scope == scope
            )
        ).one_or_none()
    return None if row is None else _state_of(row)


def stopped_states(
    engine: SAEngine, workspace_id: str | None = None, *, limit: int
) -> list[ScopeState]:
    """Every (workspace, scope) that is not OK, oldest stop first."""
    s = guard_states.c
    query = select(*(s[c] for c in _STATE_COLUMNS)).where(s.state != GuardState.OK.value)
    if workspace_id is not None:
        query = query.where(s.workspace_id == workspace_id)
    with read_transaction(engine) as conn:
        rows = conn.execute(query.order_by(s.since, s.workspace_id, s.scope).limit(limit))
        return [_state_of(row) for row in rows]


def move_state(
    engine: SAEngine, current: ScopeState, wanted: GuardState, now: datetime, **values: Any
) -> ScopeState:
    """Apply one transition of the state machine (and the columns that go with it)."""
    what = f"The guard of workspace {current.workspace_id} ({current.scope or 'workspace'})"
    transition(what, current.state, wanted)
    s = guard_states.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(guard_states)
            .where(s.workspace_id == current.workspace_id, s.scope == current.scope)
            .values(state=wanted.value, updated_at=now, **values)
        )
    found = read_state(engine, current.workspace_id, current.scope)
    if found is None:  # the row is never deleted
        raise LookupError(f"{what} has no state row.")
    return found


def mark_pauses_applied(engine: SAEngine, workspace_id: str, scope: str, now: datetime) -> None:
    s = guard_states.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(guard_states)
            .where(s.workspace_id == workspace_id, s.scope == scope)
            .values(pauses_applied_at=now, updated_at=now)
        )


def _ensure_state_row(engine: SAEngine, workspace_id: str, scope: str, now: datetime) -> None:
    s = guard_states.c
    with read_transaction(engine) as conn:
        found = conn.execute(
            select(s.state).where(s.workspace_id == workspace_id, s.scope == scope)
        ).first()
    if found is not None:
        return
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                insert(guard_states).values(
                    workspace_id=workspace_id,
                    scope=scope,
                    state=GuardState.OK.value,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # another process created it first


# -- leases ---------------------------------------------------------------------------------------


def try_lease(
    engine: SAEngine, table: Table, where: Any, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take the row's lease if nobody holds a live one; True when this caller won it."""
    c = table.c
    with write_transaction(engine) as conn:
        won = conn.execute(
            update(table)
            .where(where, or_(c.lease_owner.is_(None), c.lease_until < now))
            .values(lease_owner=owner, lease_until=now + ttl)
        ).rowcount
    return bool(won)


def release_lease(engine: SAEngine, table: Table, where: Any, owner: str) -> None:
    c = table.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(table)
            .where(where, c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


@contextmanager
def scope_lease(
    engine: SAEngine,
    workspace_id: str,
    scope: str,
    owner: str,
    clock: Callable[[], datetime],
    ttl: timedelta,
    attempts: int,
    pause: Callable[[], None],
) -> Iterator[bool]:
    """Hold the lease of a (workspace, scope) for the block; yields False when it stayed taken
    after ``attempts`` tries (``pause()`` between tries)."""
    _ensure_state_row(engine, workspace_id, scope, clock())
    s = guard_states.c
    where = and_(s.workspace_id == workspace_id, s.scope == scope)
    for attempt in range(attempts):
        if try_lease(engine, guard_states, where, owner, clock(), ttl):
            break
        if attempt + 1 < attempts:
            pause()
    else:
        yield False
        return
    try:
        yield True
    finally:
        release_lease(engine, guard_states, where, owner)


# -- pauses ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pause:
    id: int
    workspace_id: str
    scope: str
    deployment_id: str
    schedule_id: str
    workflow: str | None
    reason: str
    paused_at: datetime
    schedule_updated_at: datetime | None
    resumed_at: datetime | None
    outcome: str | None


def _pause_query() -> Any:
    p = guard_pauses.c
    return select(
        p.id,
        p.workspace_id,
        p.scope,
        p.deployment_id,
        p.schedule_id,
        p.workflow,
        p.reason,
        p.paused_at,
        p.schedule_updated_at,
        p.resumed_at,
        p.outcome,
    )


def add_pause(engine: SAEngine, pause: Pause) -> None:
    values = {k: getattr(pause, k) for k in Pause.__dataclass_fields__ if k != "id"}
    with write_transaction(engine) as conn:
        conn.execute(insert(guard_pauses).values(**values))


def open_pauses(
    engine: SAEngine, workspace_id: str, scope: str | None = None, *, limit: int
) -> list[Pause]:
    p = guard_pauses.c
    query = _pause_query().where(p.workspace_id == workspace_id, p.resumed_at.is_(None))
    if scope is not None:
        query = query.where(p.scope == scope)
    with read_transaction(engine) as conn:
        return [Pause(*row) for row in conn.execute(query.order_by(p.id).limit(limit))]


def open_pauses_of_schedule(engine: SAEngine, deployment_id: str, schedule_id: str) -> list[Pause]:
    p = guard_pauses.c
    query = _pause_query().where(
        p.deployment_id == deployment_id, p.schedule_id == schedule_id, p.resumed_at.is_(None)
    )
    with read_transaction(engine) as conn:
        return [Pause(*row) for row in conn.execute(query.order_by(p.id))]


def close_pause(engine: SAEngine, pause_id: int, outcome: str, now: datetime) -> None:
    p = guard_pauses.c
    with write_transaction(engine) as conn:
        conn.execute(
            update(guard_pauses)
            .where(p.id == pause_id, p.resumed_at.is_(None))
            .values(resumed_at=now, outcome=outcome)
        )


def latest_pauses(engine: SAEngine, deployment_ids: list[str]) -> dict[str, list[Pause]]:
    """Each deployment's open pauses (what `spojit deployments` shows)."""
    if not deployment_ids:
        return {}
    p = guard_pauses.c
    query = _pause_query().where(p.deployment_id.in_(deployment_ids), p.resumed_at.is_(None))
    out: dict[str, list[Pause]] = {}
    with read_transaction(engine) as conn:
        for row in conn.execute(query.order_by(p.id)):
            out.setdefault(row.deployment_id, []).append(Pause(*row))
    return out


def prune_pauses(engine: SAEngine, before: datetime) -> int:
    """Forget closed pauses older than ``before`` (they are history, the open ones are state)."""
    p = guard_pauses.c
    with write_transaction(engine) as conn:
        return int(
            conn.execute(
                delete(guard_pauses).where(p.resumed_at.is_not(None), p.resumed_at < before)
            ).rowcount
        )


def count_rows(engine: SAEngine, table: Table, *where: Any) -> int:
    with read_transaction(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
