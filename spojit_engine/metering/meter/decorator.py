"""``@metered``: bill any callable as a node call — a node's ``run``, or a plain function in a
hand-written Prefect flow.

One node call: resolve run, attempt, member and test flag (Prefect run context and ``spojit:``
tags) and, once per run, the workspace (``run_billing.py``); debit the node's base price together
with the call's usage record in ONE transaction (refused -> ``InsufficientCredits``, nothing
runs); run with a meter in scope (each LLM call holds, then settles and counts itself on the
record in the settle's transaction); rewrite the record only if the call ended otherwise (failed,
tools). In a run with a reservation the base is admitted in memory and committed in batches
(``batch.py``), the record with it. Keys are
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
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from spojit_engine.errors import InsufficientCredits
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.meter.batch import Charge, RunBatch
from spojit_engine.metering.meter.node_meter import Meter, metering
from spojit_engine.metering.meter.run_billing import billing_for
from spojit_engine.metering.meter.run_context import (
    MEMBER_TAG,
    RunInfo,
    current_run,
    original_run,
)
from spojit_engine.metering.meter.runtime import Runtime, current_runtime
from spojit_engine.metering.store.retry import retry_unavailable
from spojit_engine.metering.store.usage import UsageRow, usage_transaction
from spojit_engine.metering.store.usage_writes import insert_rows, rewrite_row

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine as SAEngine

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


def _call_keys(run: RunInfo | None, scope: str | None, node_name: str) -> tuple[str, str]:
    """(ledger key, usage record key) of one call. The record shares the call's ledger key (so
    each record joins its entries), except in a resumed run, whose calls replay the original's
    ledger keys and need records of their own."""
    attempt = run.attempt if run else 1
    stable = scope is not None
    scope = scope or ((run.task_run_id or run.flow_run_id) if run else None)
    scope = scope or f"adhoc-{uuid.uuid4()}"
    key = f"node:{scope}:{attempt}:{node_name}:"
    key += "0" if stable else str(_call_number(scope, attempt, node_name))
    resumed = bool(
        stable
        and run
        and run.flow_run_id
        and original_run(run.flow_run_id, run.tags) != run.flow_run_id
    )
    return key, _resumed_record_key(key, run.flow_run_id) if resumed and run else key


def _usage_of(run: RunInfo | None, node_type: str, key: str) -> Usage:
    """What the call's entries say about it: workflow, node type, member, test run."""
    return Usage(
        workflow=run.flow_name if run else None,
        node_type=node_type,
        member_id=run.tag_value(MEMBER_TAG) if run else None,
        test_run=run.test_run if run else False,
        node_call=key,
    )


def _opening_row(run: RunInfo | None, record_key: str, workspace_id: str, usage: Usage,
                 node_name: str, now: datetime) -> UsageRow:  # fmt: skip
    """The call's usage record as it starts: nothing called, nothing charged, ``ok``."""
    node_type = usage.node_type or ""
    return UsageRow(
        key=record_key, workspace_id=workspace_id, workflow=usage.workflow,
        flow_run_id=run.flow_run_id if run else None,
        task_run_id=run.task_run_id if run else None, attempt=run.attempt if run else 1,
        node_name=node_name, node_type=node_type.split(".")[0],
        mode=node_type.split(".")[1] if "." in node_type else None, models=None, tokens_in=0,
        tokens_out=0, tokens_cached=0, llm_calls=0, credits_ucr=0, member_id=usage.member_id,
        test_run=usage.test_run, status="ok", error=None, created_at=now,
        run_name=run.run_name if run else None,
        trigger=run.trigger.value if run and run.trigger else None,
    )  # fmt: skip


def _closing_row(row: UsageRow, meter: Meter, base_charged_ucr: int, status: str,
                 error: str | None) -> UsageRow:  # fmt: skip
    """The call's usage record as it ended: its LLM calls, tokens, credits and outcome."""
    return replace(
        row, models=meter.models(), tokens_in=sum(c.usage.tokens_in for c in meter.calls),
        tokens_out=sum(c.usage.tokens_out for c in meter.calls),
        tokens_cached=sum(c.usage.tokens_cached for c in meter.calls),
        llm_calls=len(meter.calls), credits_ucr=base_charged_ucr + meter.llm_cost_ucr,
        status=status, error=error, tools=",".join(meter.tools) or None,
    )  # fmt: skip


@contextmanager
def node_call(
    node_type: str, node_name: str, *, runtime: Runtime | None = None, scope: str | None = None
) -> Iterator[Meter]:
    """Meter one node call (see the module docstring). ``scope``: the call's identity across
    resumes of its run (``nodes/calls.py``), one call per scope, in place of the task run."""
    runtime = runtime or current_runtime()
    run = current_run()
    ledger = runtime.engine.ledger
    billing = billing_for(runtime, run)
    workspace_id, batch = billing.workspace_id, billing.batch
    key, record_key = _call_keys(run, scope, node_name)
    usage = _usage_of(run, node_type, key)
    run_id = run.flow_run_id if run and batch is not None else None  # None: no reservation
    meter = Meter(ledger, workspace_id, key, usage, billing.book, runtime.prices,
                  runtime.hold_ttl, run_id=run_id, batch=batch)  # fmt: skip
    row = _opening_row(run, record_key, workspace_id, usage, node_name, ledger.clock())
    base_ucr = billing.book.base(node_type)
    batched = bool(base_ucr) and batch is not None and batch.admit(base_ucr)
    status, error, base_charged_ucr, inserted = "ok", None, 0, False
    try:
        if base_ucr and not batched:
            # One transaction: the base debit and the call's usage record (as if it succeeds).
            start = replace(row, credits_ucr=base_ucr)
            entry = ledger.debit(
                workspace_id, amount_ucr=base_ucr, key=f"{key}:base", usage=usage,
                run_id=run_id, keep_ucr=batch.claimed_ucr if batch else 0,
                records=[start],
            )  # fmt: skip
            if batch is not None:
                batch.resync()
            base_charged_ucr, inserted = base_ucr, not entry.replayed
            meter.recorded = start if inserted else None
        elif base_ucr:
            base_charged_ucr = base_ucr  # admitted against the reservation; committed batched
        with metering(meter):
            yield meter
    except InsufficientCredits as exc:
        status, error = exc.usage_status, str(exc)  # "capped" when a test run's cap stopped it
        ledger.observers.refused(workspace_id, exc, usage)  # the credit guard pauses what it must
        raise
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        final = _closing_row(row, meter, base_charged_ucr, status, error)
        _record(runtime, batch if batched else None, f"{key}:base", base_ucr, usage, final,
                inserted=inserted, recorded=meter.recorded)  # fmt: skip
        ledger.observers.spent(workspace_id)  # the run's cost now includes this node call


def _record(
    runtime: Runtime, batch: RunBatch | None, charge_key: str, base_ucr: int, usage: Usage,
    final: UsageRow, *, inserted: bool, recorded: UsageRow | None,
) -> None:  # fmt: skip
    """Leave the call's usage record as ``final``: queued with its batched charge, left as the
    ledger already holds it, rewritten where it changed, or written now."""
    if batch is not None:
        batch.add(Charge(charge_key, base_ucr, usage, final))
    elif not inserted or final != recorded:
        _write_usage(runtime.engine.sa_engine, final, rewrite=inserted)


@retry_unavailable
def _write_usage(engine: SAEngine, row: UsageRow, *, rewrite: bool) -> None:
    """Write a call's usage record, or rewrite the one its charge wrote: both idempotent (the
    key is unique, a rewrite sets final values), so retried like the charge."""
    with usage_transaction(engine, row.workspace_id) as conn:
        if rewrite:
            rewrite_row(conn, row)
        else:
            insert_rows(conn, [row])


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
