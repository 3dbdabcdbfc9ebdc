"""What every node call of one flow run shares, looked up once per run and process: the workspace
it bills, that workspace's price book, and the run's batch when it has a reservation.

Workspaces are never renamed or deleted and a run's tags do not change, so none of this goes
stale during a run; a reservation made after the run's first node call is picked up because
``Engine.reserve_run`` forgets the run here (``forget_run``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from spojit_engine.metering.core.pricing import PriceBook
from spojit_engine.metering.meter.batch import RunBatch, batch_for
from spojit_engine.metering.meter.run_context import WORKSPACE_TAG, RunInfo
from spojit_engine.metering.meter.runtime import Runtime

RUNS_MAX = 1_000  # runs remembered per process; the oldest is looked up again if it comes back


@dataclass(frozen=True, slots=True)
class RunBilling:
    runtime: Runtime
    workspace_id: str
    workspace_name: str
    book: PriceBook
    batch: RunBatch | None


_runs: OrderedDict[str, RunBilling] = OrderedDict()
_lock = threading.Lock()


def billed_workspace(runtime: Runtime, run: RunInfo | None) -> tuple[str, str]:
    """(id, name) of the workspace a run bills: its tag, else the runtime's default."""
    named = (run.tag_value(WORKSPACE_TAG) if run else None) or runtime.default_workspace
    return runtime.workspace(named)


def billing_for(runtime: Runtime, run: RunInfo | None) -> RunBilling:
    """The run's billing, from the cache after its first node call in this process."""
    flow_run_id = run.flow_run_id if run else None
    if flow_run_id is not None:
        with _lock:
            hit = _runs.get(flow_run_id)
        if hit is not None and hit.runtime is runtime:
            return hit
    workspace_id, name = billed_workspace(runtime, run)
    batch = None
    if flow_run_id is not None:
        settings = runtime.engine.settings
        batch = batch_for(runtime.engine.ledger, workspace_id, flow_run_id,
                          calls_max=settings.batch_calls_max,
                          commit_seconds=settings.batch_commit_ms / 1000)  # fmt: skip
    billing = RunBilling(runtime, workspace_id, name, runtime.book.for_workspace(name), batch)
    if flow_run_id is not None:
        with _lock:
            _runs[flow_run_id] = billing
            if len(_runs) > RUNS_MAX:
                _runs.popitem(last=False)
    return billing


def forget_run(flow_run_id: str) -> None:
    """Look the run up again at its next node call (its reservation was just made)."""
    with _lock:
        _runs.pop(flow_run_id, None)
