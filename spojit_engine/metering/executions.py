"""Executions: a workspace's flow runs, newest first, each grouped from its usage records.

A run's status is the worst of its node calls' last attempts (a retried call that finally
succeeded is ``ok``): ok < failed < out of credits. Its credits are the exact sum of its records.
``group_runs`` is pure; ``read_executions`` is two bounded queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction
from spojit_engine.metering import schema
from spojit_engine.metering.usage import UsageRow

RUN_STATUS = {"ok": "ok", "failed": "failed", "refused": "out of credits"}
_STATUS_RANK = {"ok": 0, "failed": 1, "refused": 2}


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    flow_run_id: str
    workflow: str | None
    started_at: datetime
    finished_at: datetime
    status: str  # ok, failed, out of credits (Engine: incomplete, resumed, abandoned)
    test_run: bool
    member_id: str | None
    node_calls: int
    credits_ucr: int


def group_runs(rows: Sequence[UsageRow]) -> list[ExecutionRecord]:
    """One record per flow run in ``rows``, the newest run first."""
    by_run: dict[str, list[UsageRow]] = {}
    for row in rows:
        if row.flow_run_id:
            by_run.setdefault(row.flow_run_id, []).append(row)
    runs = []
    for run_id, calls in by_run.items():
        last: dict[str, UsageRow] = {}
        for call in calls:  # a call's last attempt decides its status
            scope = call.task_run_id or call.key
            if scope not in last or call.attempt >= last[scope].attempt:
                last[scope] = call
        worst = max((c.status for c in last.values()), key=lambda s: _STATUS_RANK.get(s, 1))
        first = min(calls, key=lambda c: c.created_at)
        runs.append(
            ExecutionRecord(
                flow_run_id=run_id,
                workflow=first.workflow,
                started_at=first.created_at,
                finished_at=max(c.created_at for c in calls),
                status=RUN_STATUS.get(worst, worst),
                test_run=any(c.test_run for c in calls),
                member_id=first.member_id,
                node_calls=len(calls),
                credits_ucr=sum(c.credits_ucr for c in calls),
            )
        )
    return sorted(runs, key=lambda r: (r.finished_at, r.flow_run_id), reverse=True)


def read_executions(
    engine: SAEngine,
    workspace_id: str,
    *,
    member_id: str | None,
    limit: int,
    records_max: int,
) -> list[ExecutionRecord]:
    """The newest ``limit`` runs of a workspace (only ``member_id``'s when given), reading at most
    ``records_max`` usage records."""
    u = schema.usage_records.c
    scope = [u.workspace_id == workspace_id, u.flow_run_id.is_not(None)]
    if member_id is not None:
        scope.append(u.member_id == member_id)
    newest = (
        select(u.flow_run_id)
        .where(*scope)
        .group_by(u.flow_run_id)
        .order_by(func.max(u.id).desc())
        .limit(limit)
    )
    columns = [getattr(u, name) for name in UsageRow.__dataclass_fields__]
    with read_transaction(engine) as conn:
        run_ids = list(conn.execute(newest).scalars())
        if not run_ids:
            return []
        rows = conn.execute(
            select(*columns)
            .where(*scope, u.flow_run_id.in_(run_ids))
            .order_by(u.id)
            .limit(records_max)
        ).all()
    return group_runs([UsageRow(*row) for row in rows])
