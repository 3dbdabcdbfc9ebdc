"""The timeline: a period day by day — credits, calls, and what drove each day (the workflow, the
node type and the models that took the most credits). Read from the daily rollups; pure
assembly in ``assemble_days``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from spojit_engine.metering.reads.rollup import read_model_days, read_usage_groups, workspace_days
from spojit_engine.metering.store import schema


@dataclass(frozen=True, slots=True)
class Driver:
    """What took the most credits on a day, and how many (µcr)."""

    name: str
    credits_ucr: int


@dataclass(frozen=True, slots=True)
class TimelineDayRecord:
    day: date
    credits_ucr: int
    calls: int
    workflow: Driver | None
    node_type: Driver | None
    model: Driver | None


def top(credits_by_name: dict[str, int]) -> Driver | None:
    """The name with the most credits (ties: the first name in order); None when none spent."""
    ranked = sorted(credits_by_name.items(), key=lambda item: (-item[1], item[0]))
    if not ranked or ranked[0][1] <= 0:
        return None
    return Driver(*ranked[0])


def assemble_days(
    days: Iterable[date],
    by_workflow: dict[tuple[Any, ...], list[int]],
    by_node_type: dict[tuple[Any, ...], list[int]],
    by_models: dict[tuple[date, str], int],
) -> list[TimelineDayRecord]:
    """One record per day in ``days`` (zero where nothing ran), from grouped usage."""
    workflows: dict[date, dict[str, int]] = {}
    calls: dict[date, int] = {}
    for (day, name), (credits_ucr, count) in by_workflow.items():
        workflows.setdefault(day, {})[name or "(none)"] = credits_ucr
        calls[day] = calls.get(day, 0) + count
    types: dict[date, dict[str, int]] = {}
    for (day, name), (credits_ucr, _) in by_node_type.items():
        types.setdefault(day, {})[name or "(none)"] = credits_ucr
    models: dict[date, dict[str, int]] = {}
    for (day, name), credits_ucr in by_models.items():
        models.setdefault(day, {})[name] = credits_ucr
    return [
        TimelineDayRecord(
            day=day,
            credits_ucr=sum(workflows.get(day, {}).values()),
            calls=calls.get(day, 0),
            workflow=top(workflows.get(day, {})),
            node_type=top(types.get(day, {})),
            model=top(models.get(day, {})),
        )
        for day in days
    ]


def read_timeline(
    conn: Connection,
    workspace_id: str,
    now: datetime,
    *,
    days: int | None = None,
    member_id: str | None = None,
) -> list[TimelineDayRecord]:
    """Every day of the current period up to today (or the last ``days`` days). A day starts at
    the workspace's reset time of day (midnight UTC unless its plan started at another time)."""
    calendar = workspace_days(conn, workspace_id)
    today = calendar.day_of(now)
    if days is None:
        w = schema.workspaces.c
        since = conn.execute(select(w.period_start).where(w.id == workspace_id)).scalar_one()
    else:
        since = calendar.start(today - timedelta(days=days - 1))
    kwargs: dict[str, Any] = {"since": since, "member_id": member_id}
    by_workflow = read_usage_groups(conn, workspace_id, by=("day", "workflow"), **kwargs)
    by_node_type = read_usage_groups(conn, workspace_id, by=("day", "node_type"), **kwargs)
    first = calendar.day_of(since)  # a period starts at a day's start: whole days only
    by_models = read_model_days(conn, workspace_id, since=first, member_id=member_id)
    span = (first + timedelta(days=i) for i in range((today - first).days + 1))
    return assemble_days(span, by_workflow, by_node_type, by_models)
