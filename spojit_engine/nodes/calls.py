"""A node call's identity across resumes, and the Prefect cache key built from it.

A run stopped for credits resumes as a new flow run tagged ``spojit:resume-of=ORIGINAL``. For the
resumed run to skip the nodes that completed, each node call needs a name that is the same in the
original and in its resumes: ``sha256(original run, n-th node call of the run, node, input)``,
where n counts node calls in the order the flow makes them (the flow's own thread, so concurrent
Loop and Parallel children are numbered in submission order). That identity is

- the key of the completed node's result (``kept_results.py`` writes it when the run is refused;
  the resumed run's node task has it as its Prefect cache key): a resumed run reads it instead of
  running the node;
- the scope of the node call's metering keys (``node_call(scope=...)``): if a completed node ran
  again anyway (its cached result expired or was deleted), its debits and holds replay instead of
  billing twice.

The input is part of it, so a node fed something else than in the original run is new work.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from spojit_engine.metering.meter.run_context import original_run

_RUNS_MAX = 10_000  # flow runs whose call counters this process keeps; the oldest are forgotten
_sequences: OrderedDict[str, itertools.count[int]] = OrderedDict()
_lock = threading.Lock()


def _next_call(flow_run_id: str) -> int:
    with _lock:
        counter = _sequences.get(flow_run_id)
        if counter is None:
            counter = _sequences[flow_run_id] = itertools.count()
            if len(_sequences) > _RUNS_MAX:
                _sequences.popitem(last=False)
        return next(counter)


@dataclass(frozen=True, slots=True)
class FlowRun:
    flow_run_id: str
    original: str  # the run this one continues (itself unless it is a resume)

    @property
    def resumed(self) -> bool:
        return self.original != self.flow_run_id


def current_flow_run() -> FlowRun | None:
    """The flow run this code runs in (None outside one)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    flow_run_id = str(context.flow_run.id)
    return FlowRun(flow_run_id, original_run(flow_run_id, context.flow_run.tags or ()))


def call_identity(node_name: str, value: Any) -> str | None:
    """This node call's identity in the current flow run (None outside a flow run, or when the
    input cannot be hashed: then the call is neither cached nor replayed)."""
    from prefect.utilities.hashing import hash_objects

    run = current_flow_run()
    if run is None:
        return None
    number = _next_call(run.flow_run_id)
    inputs = hash_objects(value)
    if inputs is None:
        return None
    text = f"{run.original}\x1f{number}\x1f{node_name}\x1f{inputs}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def result_key(identity: str) -> str:
    """Where a node call's result is kept for a resume: the resumed run's cache key."""
    return f"spojit-node-{identity}"


def cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Prefect ``cache_key_fn`` of a node task in a resumed run (None: no caching)."""
    identity = parameters.get("call_id")
    return result_key(identity) if identity else None
