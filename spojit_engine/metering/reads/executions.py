"""Executions: a workspace's flow runs, newest start first, each grouped from its usage records,
and one run's nodes (credits, tokens and models per node).

A run's status is the worst of its node calls' last attempts (a retried call that finally
succeeded is ``ok``): ok < failed < out of credits or test cap reached (a test run stopped by its
own ``max_credits``, recorded ``capped``: the workspace still had credits). Its credits are the
exact sum of its records; so are each node's. Its name and trigger are Prefect's run name and
what started it (``run_context.classify``), as recorded with its usage. ``group_runs`` and
``group_nodes`` are pure; the readers are bounded queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction
from spojit_engine.metering.reads.rollup import usage_runs
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.usage import UsageRow

RUN_STATUS = {
    "ok": "ok",
    "failed": "failed",
    "refused": "out of credits",
    "capped": "test cap reached",
}
# Which call speaks for a node retried or run in parts: the worst one (a stop over a failure).
STATUS_RANK = {"ok": 0, "failed": 1, "refused": 2, "capped": 2}


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    flow_run_id: str
    workflow: str | None
    started_at: datetime
    finished_at: datetime
    status: str  # ok, failed, out of credits, test cap reached (Engine: incomplete, resumed, …)
    test_run: bool
    member_id: str | None
    node_calls: int
    credits_ucr: int
    run_name: str | None = None
    trigger: str | None = None  # schedule, webhook, automation, manual, test


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node of a run: all its calls and attempts, summed."""

    node_name: str
    node_type: str  # connector.agent, transform.map, … (type and mode)
    calls: int
    llm_calls: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    models: tuple[str, ...]
    credits_ucr: int
    status: str  # ok, failed, out of credits, test cap reached
    error: str | None


@dataclass(frozen=True, slots=True)
class ExecutionDetailRecord:
    run: ExecutionRecord
    nodes: list[NodeRecord]


def _last_attempts(calls: Sequence[UsageRow]) -> list[UsageRow]:
    """Each node call's last attempt: the one that decides its status."""
    last: dict[str, UsageRow] = {}
    for call in calls:
        scope = call.task_run_id or call.key
        if scope not in last or call.attempt >= last[scope].attempt:
            last[scope] = call
    return list(last.values())


def _worst(calls: Sequence[UsageRow]) -> UsageRow:
    return max(_last_attempts(calls), key=lambda c: STATUS_RANK.get(c.status, 1))


def _run_of(run_id: str, calls: Sequence[UsageRow]) -> ExecutionRecord:
    first = min(calls, key=lambda c: (c.created_at, c.key))
    worst = _worst(calls).status
    return ExecutionRecord(
        flow_run_id=run_id,
        workflow=first.workflow,
        started_at=first.created_at,
        finished_at=max(c.created_at for c in calls),
        status=RUN_STATUS.get(worst, worst),
        test_run=any(c.test_run for c in calls),
        member_id=first.member_id,
        node_calls=len(calls),
        credits_ucr=sum(c.credits_ucr for c in calls),
        run_name=next((c.run_name for c in calls if c.run_name), None),
        trigger=next((c.trigger for c in calls if c.trigger), None),
    )


def group_runs(rows: Sequence[UsageRow]) -> list[ExecutionRecord]:
    """One record per flow run in ``rows``, the latest start first (ties: run id, descending)."""
    by_run: dict[str, list[UsageRow]] = {}
    for row in rows:
        if row.flow_run_id:
            by_run.setdefault(row.flow_run_id, []).append(row)
    runs = [_run_of(run_id, calls) for run_id, calls in by_run.items()]
    return sorted(runs, key=lambda r: (r.started_at, r.flow_run_id), reverse=True)


def group_nodes(rows: Sequence[UsageRow]) -> list[NodeRecord]:
    """One record per node of a run, in the order the nodes first ran."""
    by_node: dict[tuple[str, str], list[UsageRow]] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.key)):
        node_type = f"{row.node_type}.{row.mode}" if row.mode else row.node_type
        by_node.setdefault((row.node_name, node_type), []).append(row)
    nodes = []
    for (name, node_type), calls in by_node.items():
        worst = _worst(calls)
        models = {m for c in calls for m in (c.models or "").split(",") if m}
        nodes.append(
            NodeRecord(
                node_name=name,
                node_type=node_type,
                calls=len(calls),
                llm_calls=sum(c.llm_calls for c in calls),
                tokens_in=sum(c.tokens_in for c in calls),
                tokens_out=sum(c.tokens_out for c in calls),
                tokens_cached=sum(c.tokens_cached for c in calls),
                models=tuple(sorted(models)),
                credits_ucr=sum(c.credits_ucr for c in calls),
                status=RUN_STATUS.get(worst.status, worst.status),
                error=worst.error,
            )
        )
    return nodes


def _scope(workspace_id: str, member_id: str | None) -> list[Any]:
    u = schema.usage_records.c
    scope = [u.workspace_id == workspace_id, u.flow_run_id.is_not(None)]
    if member_id is not None:
        scope.append(u.member_id == member_id)
    return scope


_COLUMNS = [getattr(schema.usage_records.c, name) for name in UsageRow.__dataclass_fields__]


def read_executions(
    engine: SAEngine,
    workspace_id: str,
    *,
    member_id: str | None,
    limit: int,
    offset: int = 0,
    records_max: int,
) -> list[ExecutionRecord]:
    """The ``limit`` runs of a workspace after the ``offset`` latest-started ones (only
    ``member_id``'s when given), reading at most ``records_max`` usage records."""
    u = schema.usage_records.c
    scope = _scope(workspace_id, member_id)
    r = usage_runs.c  # each run's start, kept with its records: a page is an index range
    page = (
        select(r.flow_run_id)
        .where(r.workspace_id == workspace_id, r.member_id == (member_id or ""))
        .order_by(r.started_at.desc(), r.flow_run_id.desc())
        .limit(limit)
        .offset(offset)
    )
    with read_transaction(engine) as conn:
        run_ids = list(conn.execute(page).scalars())
        if not run_ids:
            return []
        rows = conn.execute(
            select(*_COLUMNS)
            .where(*scope, u.flow_run_id.in_(run_ids))
            .order_by(u.id)
            .limit(records_max)
        ).all()
    return group_runs([UsageRow(*row) for row in rows])


def read_execution(
    engine: SAEngine,
    workspace_id: str,
    flow_run_id: str,
    *,
    member_id: str | None,
    records_max: int,
) -> ExecutionDetailRecord | None:
    """One run and its nodes, or None when the workspace (or ``member_id``) has no such run."""
    u = schema.usage_records.c
    query = (
        select(*_COLUMNS)
        .where(*_scope(workspace_id, member_id), u.flow_run_id == flow_run_id)
        .order_by(u.id)
        .limit(records_max)
    )
    with read_transaction(engine) as conn:
        rows = [UsageRow(*row) for row in conn.execute(query)]
    if not rows:
        return None
    return ExecutionDetailRecord(_run_of(flow_run_id, rows), group_nodes(rows))
