"""The live view of a run, and what each node of a run cost.

``RunView`` is what a person watches while ``spojit run`` goes: a bar over the workflow's steps
and, per node, a spinner, then a tick (or a cross) with its calls and credits. A poller thread
feeds it from the usage records the meter writes, so it shows what was billed, not a guess.
``node_costs`` groups a run's usage records per node; the report after the run uses it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spojit_engine.metering.reads.executions import STATUS_RANK
from spojit_engine.metering.store.usage import UsageRow
from spojit_engine.money import ucr_to_credits

if TYPE_CHECKING:
    from rich.console import Console

    from spojit_engine.engine import Engine
    from spojit_engine.nodes import Node, Workflow

POLL_INTERVAL_SECONDS = 0.25  # how often the live view reads the run's usage records
RUN_RECORDS_MAX = 10_000  # usage records read back for one flow run


@dataclass(frozen=True)
class NodeCost:
    """One node's calls in one flow run (retries and loop iterations are calls too)."""

    node: str
    node_type: str
    calls: int
    status: str  # ok, failed, refused: the worst of its calls' last attempts
    models: str
    tokens_in: int
    tokens_out: int
    credits: Decimal


def node_type_of(row: UsageRow) -> str:
    return row.node_type + (f".{row.mode}" if row.mode else "")


def node_costs(rows: list[UsageRow]) -> list[NodeCost]:
    """Per node, in the order the nodes first ran (``rows`` may come newest first)."""
    by_node: dict[str, list[UsageRow]] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        by_node.setdefault(row.node_name, []).append(row)
    costs = []
    for name, calls in by_node.items():
        last: dict[str, UsageRow] = {}
        for call in calls:  # a call's last attempt decides its status
            scope = call.task_run_id or call.key
            if scope not in last or call.attempt >= last[scope].attempt:
                last[scope] = call
        status = max((c.status for c in last.values()), key=lambda s: STATUS_RANK.get(s, 1))
        models = sorted({m for c in calls if c.models for m in c.models.split(",")})
        costs.append(
            NodeCost(
                node=name,
                node_type=node_type_of(calls[0]),
                calls=len(calls),
                status=status,
                models=",".join(models),
                tokens_in=sum(c.tokens_in for c in calls),
                tokens_out=sum(c.tokens_out for c in calls),
                credits=ucr_to_credits(sum(c.credits_ucr for c in calls)),
            )
        )
    return costs


# -- the live view --------------------------------------------------------------------------------


def tree_of(steps: list[Node]) -> list[tuple[int, Node, bool]]:
    """Every node of a workflow, depth first: ``(depth, node, is a top-level step)``."""
    from spojit_engine.nodes import Condition, Loop, Parallel

    out: list[tuple[int, Node, bool]] = []

    def walk(node: Node, depth: int) -> None:
        out.append((depth, node, depth == 0))
        children: list[Node | None] = []
        if isinstance(node, Loop):
            children = [node.body]
        elif isinstance(node, Condition):
            children = [node.then, node.otherwise]
        elif isinstance(node, Parallel):
            children = list(node.branches)
        for child in children:
            if child is not None:
                walk(child, depth + 1)

    for step in steps:
        walk(step, 0)
    return out


class RunView:
    """What a person watches while a run goes: a bar over the workflow's steps, and per node a
    spinner, a tick (or a cross) with its calls and credits. Fed by the run's usage records."""

    def __init__(self, workflow: Workflow, *, test: bool) -> None:
        from rich.spinner import Spinner

        self.workflow = workflow
        self.test = test
        self.tree = tree_of(workflow.steps)
        self.costs: dict[str, NodeCost] = {}
        self.finished = False
        self.started = time.monotonic()
        self._spinner = Spinner("dots", style="cyan")
        self._lock = threading.Lock()

    def update(self, rows: list[UsageRow], *, finished: bool = False) -> None:
        costs = {cost.node: cost for cost in node_costs(rows)}
        with self._lock:
            self.costs = costs
            self.finished = finished

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        from spojit_engine.display import credits_text

        with self._lock:
            costs, finished = dict(self.costs), self.finished
        steps = [node for depth, node, top in self.tree if top]
        done = sum(1 for node in steps if node.name in costs)
        total = sum((c.credits for c in costs.values()), Decimal(0))
        head = Table.grid(padding=(0, 1))
        head.add_row(
            Text(self.workflow.name, style="bold"),
            ProgressBar(total=len(steps), completed=done, width=30),
            Text(f"{done}/{len(steps)} steps"),
            Text(f"{time.monotonic() - self.started:4.0f}s", style="dim"),
            Text(f"{credits_text(total)} credits" + (" (test run)" if self.test else "")),
        )
        table = Table.grid(padding=(0, 2))
        for _ in range(4):
            table.add_column()
        table.columns[2].justify = table.columns[3].justify = "right"
        table.columns[2].no_wrap = table.columns[3].no_wrap = True  # numbers never wrap
        names = [node.name for _, node, _ in self.tree]
        last_seen = max((i for i, name in enumerate(names) if name in costs), default=-1)
        rows: list[tuple[int, str, str, NodeCost | None]] = [
            (depth, node.name, node.node_type, costs.get(node.name)) for depth, node, _ in self.tree
        ]
        extra = [c for name, c in costs.items() if name not in names]  # e.g. "search:ingest"
        rows += [(1, c.node, c.node_type, c) for c in extra]
        for i, (depth, name, node_type, cost) in enumerate(rows):
            label = Text("  " * depth + name)
            label.append(f"  {node_type}", style="dim")
            if cost is not None:
                mark: Any = Text("✓", style="green") if cost.status == "ok" else Text("✗", "red")
                calls = f"{cost.calls} call" + ("s" if cost.calls != 1 else "")
                table.add_row(mark, label, calls, credits_text(cost.credits))
            elif finished:
                table.add_row(Text("-", style="dim"), label, Text("skipped", style="dim"), "")
            elif i == last_seen + 1:
                table.add_row(self._spinner, label, "", "")
            else:
                table.add_row(Text("·", style="dim"), label, "", "")
        return Group(head, table)


class _Poller(threading.Thread):
    """Feeds the view with the usage records this run has written so far."""

    def __init__(self, engine: Engine, workspace_id: str, view: RunView) -> None:
        super().__init__(name="spojit-run-view", daemon=True)
        self.engine, self.workspace_id, self.view = engine, workspace_id, view
        self.since = engine.now()
        self.stop = threading.Event()

    def run(self) -> None:
        flow_run_id = None
        while not self.stop.wait(POLL_INTERVAL_SECONDS):
            try:
                flow_run_id = flow_run_id or first_run_since(
                    self.engine, self.workspace_id, self.view.workflow.name, self.since
                )
                if flow_run_id is None:
                    continue
                rows = self.engine.usage_records(self.workspace_id, flow_run_id=flow_run_id,
                                                 limit=RUN_RECORDS_MAX)  # fmt: skip
            except Exception:  # the view is best effort; the run itself reports errors
                continue
            self.view.update(rows)


def first_run_since(engine: Engine, workspace_id: str, workflow: str, since: Any) -> str | None:
    """The flow run of ``workflow`` whose first node call came first after ``since``: this run's,
    unless another run of the same workflow in the same workspace started alongside it."""
    rows = engine.usage_records(workspace_id, since=since, limit=RUN_RECORDS_MAX)
    ours = [r for r in rows if r.workflow == workflow and r.flow_run_id]
    return ours[-1].flow_run_id if ours else None  # newest first: the last is the oldest


@contextmanager
def watching(
    engine: Engine, workspace_id: str, view: RunView, console: Console | None
) -> Iterator[None]:
    """Show ``view`` live on ``console`` (if any) while the block runs; it vanishes at the end."""
    if console is None:
        yield
        return
    from rich.live import Live

    poller = _Poller(engine, workspace_id, view)
    with Live(view, console=console, refresh_per_second=8, transient=True):
        poller.start()
        try:
            yield
        finally:
            poller.stop.set()
            poller.join()
