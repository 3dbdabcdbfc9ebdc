"""``@metered``: bill any callable as a node call — a node's ``run``, or a plain function in a
hand-written Prefect flow.

One node call: resolve workspace, run, attempt, member and test flag (Prefect run context and
``spojit:`` tags); debit the node's base price (refused -> ``InsufficientCredits``, nothing runs);
run with a meter in scope (each LLM call holds, then settles); write one usage record. Keys are
``node:{task or flow run}:{attempt}:{node}:{n}``: a retry is a new attempt and is billed for what
it called; re-running the same attempt replays the same keys and bills nothing new.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from spojit_engine.errors import InsufficientCredits
from spojit_engine.metering.meter import Meter, metering
from spojit_engine.metering.records import Usage
from spojit_engine.metering.run_context import MEMBER_TAG, WORKSPACE_TAG, RunInfo, current_run
from spojit_engine.metering.runtime import Runtime, current_runtime
from spojit_engine.metering.usage import UsageRow, record_usage

F = TypeVar("F", bound=Callable[..., Any])

_SCOPES_MAX = 10_000  # call counters kept per (run, attempt); the oldest are forgotten
_counters: OrderedDict[tuple[str, int, str], itertools.count[int]] = OrderedDict()
_counters_lock = threading.Lock()


def _call_number(scope: str, attempt: int, node_name: str) -> int:
    """The n-th call of this node within this run attempt: stable when the attempt re-runs."""
    with _counters_lock:
        key = (scope, attempt, node_name)
        counter = _counters.get(key)
        if counter is None:
            counter = _counters[key] = itertools.count()
            if len(_counters) > _SCOPES_MAX:
                _counters.popitem(last=False)
        return next(counter)


def _resumed_record_key(key: str, flow_run_id: str | None) -> str:
    return "node:" + hashlib.sha256(f"{key}\x1f{flow_run_id}".encode()).hexdigest()[:40]


def _billed_workspace(runtime: Runtime, run: RunInfo | None) -> tuple[str, str]:
    """(id, name) of the workspace this run bills: its tag, else the runtime's default."""
    named = (run.tag_value(WORKSPACE_TAG) if run else None) or runtime.default_workspace
    return runtime.workspace(named)


def _workspace_of(runtime: Runtime, run: RunInfo | None) -> str:
    return _billed_workspace(runtime, run)[0]


@contextmanager
def node_call(
    node_type: str, node_name: str, *, runtime: Runtime | None = None, scope: str | None = None
) -> Iterator[Meter]:
    """Meter one node call (see the module docstring). ``scope``: the call's identity across
    resumes of its run (``nodes/calls.py``), one call per scope, in place of the task run."""
    runtime = runtime or current_runtime()
    run = current_run()
    ledger = runtime.engine.ledger
    workspace_id, workspace_name = _billed_workspace(runtime, run)
    attempt = run.attempt if run else 1
    stable = scope is not None
    scope = scope or ((run.task_run_id or run.flow_run_id) if run else None)
    scope = scope or f"adhoc-{uuid.uuid4()}"
    key = f"node:{scope}:{attempt}:{node_name}:"
    key += "0" if stable else str(_call_number(scope, attempt, node_name))
    # A resumed run's call of the same identity shares the ledger keys, not the usage record.
    record_key = _resumed_record_key(key, run.flow_run_id) if stable and run else key
    usage = Usage(
        workflow=run.flow_name if run else None,
        node_type=node_type,
        member_id=run.tag_value(MEMBER_TAG) if run else None,
        test_run=run.test_run if run else False,
        node_call=key,
    )
    book = runtime.book.for_workspace(workspace_name)
    meter = Meter(ledger, workspace_id, key, usage, book, runtime.prices, runtime.hold_ttl)
    base_ucr = book.base(node_type)
    status, error, base_charged_ucr = "ok", None, 0
    try:
        if base_ucr:
            ledger.debit(workspace_id, amount_ucr=base_ucr, key=f"{key}:base", usage=usage)
            base_charged_ucr = base_ucr
        with metering(meter):
            yield meter
    except InsufficientCredits as exc:
        status, error = "refused", str(exc)
        ledger.observers.refused(workspace_id, exc, usage)  # the credit guard pauses what it must
        raise
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        charged = base_charged_ucr + meter.llm_cost_ucr
        models = sorted({call.usage.model for call in meter.calls})
        record_usage(
            runtime.engine.sa_engine,
            UsageRow(
                key=record_key, workspace_id=workspace_id, workflow=usage.workflow,
                flow_run_id=run.flow_run_id if run else None,
                task_run_id=run.task_run_id if run else None, attempt=attempt,
                node_name=node_name, node_type=node_type.split(".")[0],
                mode=node_type.split(".")[1] if "." in node_type else None,
                models=",".join(models) or None,
                tokens_in=sum(c.usage.tokens_in for c in meter.calls),
                tokens_out=sum(c.usage.tokens_out for c in meter.calls),
                tokens_cached=sum(c.usage.tokens_cached for c in meter.calls),
                llm_calls=len(meter.calls), credits_ucr=charged, member_id=usage.member_id,
                test_run=usage.test_run, status=status, error=error,
                created_at=ledger.clock(), tools=",".join(meter.tools) or None,
            ),
        )  # fmt: skip


def metered(node_type: str, *, name: str | None = None) -> Callable[[F], F]:
    """Bill each call of the wrapped callable as a ``node_type`` node (``connector.agent``…)."""

    def wrap(fn: F) -> F:
        node_name = name or fn.__name__

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with node_call(node_type, node_name):
                return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
