"""A workflow's history in a workspace, from its usage records: per node, what each call cost and
how many LLM calls it made; per run, what it cost and whether it was a test. One bounded query;
``summarise`` is pure, so estimates and the advisor are tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction
from spojit_engine.metering.store import schema


@dataclass
class NodeHistory:
    """The successful calls of one node (by name) of one workflow, newest first."""

    credits_ucr: list[int] = field(default_factory=list)
    llm_calls: list[int] = field(default_factory=list)
    tools: list[str | None] = field(default_factory=list)  # the tool an agent call chose
    models: list[str | None] = field(default_factory=list)
    live_calls: int = 0  # calls in live runs: loop sizes and branch ratios are read from these
    node_type: str = ""  # the price-book key: ``connector.agent``, ``loop``…
    runs: set[str] = field(default_factory=set)  # the flow runs it was called in

    @property
    def calls(self) -> int:
        return len(self.credits_ucr)


@dataclass
class RunHistory:
    credits_ucr: int
    test_run: bool


@dataclass
class WorkflowHistory:
    nodes: dict[str, NodeHistory] = field(default_factory=dict)
    runs: dict[str, RunHistory] = field(default_factory=dict)

    def node(self, name: str) -> NodeHistory | None:
        found = self.nodes.get(name)
        return found if found is not None and found.calls else None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    node_name: str
    family: str
    mode: str | None
    flow_run_id: str | None
    credits_ucr: int
    llm_calls: int
    test_run: bool
    status: str
    tools: str | None
    models: str | None


def summarise(rows: Iterable[HistoryRow]) -> WorkflowHistory:
    """Per node: the successful calls; per run: what all its calls cost (failed ones too)."""
    history = WorkflowHistory()
    for row in rows:
        if row.flow_run_id:
            run = history.runs.setdefault(row.flow_run_id, RunHistory(0, row.test_run))
            run.credits_ucr += row.credits_ucr
        if row.status != "ok":
            continue
        node_type = f"{row.family}.{row.mode}" if row.mode else row.family
        node = history.nodes.setdefault(row.node_name, NodeHistory(node_type=node_type))
        if row.flow_run_id:
            node.runs.add(row.flow_run_id)
        node.credits_ucr.append(row.credits_ucr)
        node.llm_calls.append(row.llm_calls)
        node.tools.append(row.tools)
        node.models.append(row.models)
        node.live_calls += not row.test_run
    return history


def read_history(
    engine: SAEngine, *, workspace_id: str, workflow: str, limit: int
) -> WorkflowHistory:
    """The newest ``limit`` usage records of ``workflow`` in the workspace, summarised."""
    u = schema.usage_records.c
    query = (
        select(
            u.node_name,
            u.node_type,
            u.mode,
            u.flow_run_id,
            u.credits_ucr,
            u.llm_calls,
            u.test_run,
            u.status,
            u.tools,
            u.models,
        )
        .where(u.workspace_id == workspace_id, u.workflow == workflow)
        .order_by(u.id.desc())
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        return summarise(HistoryRow(*tuple(row)) for row in conn.execute(query))


def workflows_with_history(engine: SAEngine, *, workspace_id: str, limit: int) -> list[str]:
    """The workflows the workspace has run (by name), most recent first, at most ``limit``."""
    u = schema.usage_records.c
    newest = func.max(u.id)
    query = (
        select(u.workflow)
        .where(u.workspace_id == workspace_id, u.workflow.is_not(None))
        .group_by(u.workflow)
        .order_by(newest.desc())
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        return [str(name) for (name,) in conn.execute(query)]
