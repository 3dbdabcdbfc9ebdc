"""Metering overhead: a metered node as a Prefect task against the same work unmetered, and the
cost of pricing one LLM call.

    .venv/bin/python bench/metering.py            # full run (~2-3 min)
    .venv/bin/python bench/metering.py --quick    # shorter run (~1 min)
    .venv/bin/python bench/metering.py --json     # machine-readable results instead of the table
    .venv/bin/python bench/metering.py --profile  # only: cProfile of node.call outside Prefect

Set-up: a temporary SQLite ledger (``Engine("sqlite:///TMP/ledger.db")``: WAL, synchronous=FULL)
with one workspace on plan "business" plus a large top-up; ``use_runtime(Runtime.create(engine))``
(no default workspace: with one workspace in the ledger, a node call finds it itself); a Prefect
test server (``prefect_test_harness``; PREFECT_HOME in the temp dir, analytics off,
PREFECT_LOGGING_LEVEL=WARNING as in the tests); LiteLLM in mock mode (SPOJIT_LLM_MODE=mock).

1. Per task inside a Prefect flow.  One flow per round; inside it six variants run as tasks,
   interleaved in blocks (each variant of a kind leads in turn), after 2 uncounted warm-up
   calls each per flow:
     map   metered  ``Transform("shape", lambda x: x, mode="map").task(x)``
     map   "tagged" (unmetered twin)  the node's task options (tags when on, no cache policy
                    and no persisted result in an original run, retry rule) on the same lambda,
                    called as a node calls it
     map   plain    ``prefect.task(same lambda)(x)``
     llm   metered  ``Transform("extract", mode="structured", schema=Invoice).task(text)``
     llm   tagged / plain  a task doing ``litellm.completion(**kwargs)`` with the very kwargs
                    the node's call sends (captured once: model, messages, max_tokens and the
                    same ``mock_response``), then the same ``Invoice.model_validate_json``.
   The twin exists because a node's task costs Prefect other than a bare task does (tags, when
   on, an API round trip for tag concurrency slots; no cache key: a node keeps its result for a
   resume in memory, nodes/kept_results.py): metered - twin is the metering alone, twin - plain
   that Prefect difference.
   The map variants run again in a flow run holding a reservation (group commit).  Per-call
   wall times are measured around each task call in the flow body; the table shows medians over
   all counted calls (mean, p90), per-round medians, metered/plain (target <= 1.10x, and <= 1.05x
   in the reserved run) and the differences in ms.  Then the same
   work outside Prefect in µs per call, within the bound runtime (``node.call`` still meters
   outside a flow), and each metering step alone, so the difference can be attributed.
   "CPU" columns are the calling thread's CPU time (``time.thread_time``): waits for fsync or
   for cores held by other processes do not count, so on a busy box they move less than wall
   times (the task runs in the flow's thread, so metering's own work is in that thread).

2. Pricing one LLM call: our ``ModelPriceTable.price(model)`` + ``llm_cost_ucr`` (warm) vs
   ``litellm.completion_cost(completion_response=r)`` on the mock response of the same call;
   timeit, median of repeats.  Target <= 20 µs for ours.

Fixed costs come first and depend on the load more than anything measured: importing Prefect
(5-15 s), then starting the test server (25-85 s on a busy 2-core box) while a thread imports
LiteLLM and builds the ledger.  The header shows them, the load average and the fsync latency.

No assertions: it prints numbers.  Nothing here touches the engine's code.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import io
import itertools
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import fs_type, median  # noqa: E402  (bench/ is the script's directory)

WORKSPACE = "bench"
SEED_CREDITS = Decimal("100000000")  # the top-up on top of the business plan's allowance
MODEL = "gpt-4o-mini"
MAX_TOKENS = 256
TEXT = (
    "Invoice 2024-117 from Acme Widgets GmbH, Hauptstrasse 5, Berlin: 3 widgets at 19.90 EUR "
    "each, total 59.70 EUR, payable within 30 days of delivery; not yet paid."
)
TARGET_RATIO = 1.10  # unbatched: a node call's one ledger transaction
TARGET_RATIO_BATCHED = 1.05  # a run with a reservation: charges group-committed
TARGET_PRICE_US = 20.0


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _quantile(xs: list[float], q: float) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1]


def _set_env(workdir: Path) -> None:
    """Before anything imports Prefect, LiteLLM or reads spojit settings."""
    os.environ["PREFECT_HOME"] = str(workdir / "prefect_home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # The test server's own shutdown noise (cancelled event flushes) would bury the table.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ["SPOJIT_HOME"] = str(workdir / "spojit_home")
    os.environ["SPOJIT_LLM_MODE"] = "mock"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


def _fsync_ms(directory: Path, n: int = 20) -> float:
    """Median ms to append 4 KiB and fsync it in ``directory``: what each durable commit waits."""
    path = directory / "fsync-probe"
    times: list[float] = []
    with open(path, "ab") as f:
        for _ in range(n):
            f.write(b"x" * 4096)
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - t0)
    path.unlink()
    return median(times) * 1e3


def _load() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------------------------
# Set-up


class Bench:
    """The ledger, the runtime, the nodes and their unmetered twins."""

    def __init__(self, workdir: Path) -> None:
        from pydantic import BaseModel

        from spojit_engine import Engine, Transform
        from spojit_engine.metering.meter.runtime import Runtime

        class Invoice(BaseModel):
            vendor: str
            total: float
            paid: bool

        self.Invoice = Invoice
        self.engine = Engine(f"sqlite:///{workdir / 'ledger.db'}")
        ws = self.engine.create_workspace(WORKSPACE, plan="business")
        self.engine.grant(ws.id, SEED_CREDITS, kind="topup", key="bench-seed")
        self.ws_id = str(ws.id)
        self.runtime = Runtime.create(self.engine)
        self.runtime_named = Runtime.create(self.engine, default_workspace=WORKSPACE)
        self.fn: Callable[[Any], Any] = lambda x: x
        self.map_node = Transform("shape", self.fn, mode="map")
        self.llm_node = Transform(
            "extract", mode="structured", schema=Invoice, model=MODEL, max_tokens=MAX_TOKENS
        )
        self.completion_kwargs: dict[str, Any] = {}
        self.reserved_runs: list[str] = []
        self.floor_db = _durable_db(workdir / "floor.db")

    def floor_fn(self, x: Any) -> Any:
        """The map node's work plus the least a ledger committing each call durably must do:
        one write transaction on a SQLite file with the ledger's pragmas, nothing else."""
        self.floor_db.execute("BEGIN IMMEDIATE")
        self.floor_db.execute("UPDATE floor SET n = n + 1")
        self.floor_db.execute("COMMIT")
        return self.fn(x)

    def capture_completion_kwargs(self) -> None:
        """The kwargs the LLM node hands ``litellm.completion`` (one metered call, spied on)."""
        from spojit_engine.llm import litellm_module

        litellm = litellm_module()
        real = litellm.completion
        seen: dict[str, Any] = {}

        def spy(**kwargs: Any) -> Any:
            seen.update(kwargs)
            return real(**kwargs)

        litellm.completion = spy
        try:
            self.llm_node.call(TEXT)
        finally:
            litellm.completion = real
        self.completion_kwargs = seen

    def plain_llm(self, text: str) -> Any:
        """The LLM node's work without the meter: the same completion, the same validation."""
        from spojit_engine.llm import litellm_module

        response = litellm_module().completion(**self.completion_kwargs)
        return self.Invoice.model_validate_json(response.choices[0].message.content or "{}")

    def entries(self) -> int:
        from sqlalchemy import func, select

        from spojit_engine.db import read_transaction
        from spojit_engine.metering.store import schema

        with read_transaction(self.engine.sa_engine) as conn:
            return int(conn.execute(select(func.count()).select_from(schema.entries)).scalar_one())


def _durable_db(path: Path) -> Any:
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE floor (n INTEGER NOT NULL)")
    db.execute("INSERT INTO floor VALUES (0)")
    return db


def _prepare(workdir: Path, box: dict[str, Any]) -> None:
    """Import LiteLLM, load its tokenizer, build the ledger: in a thread, while the Prefect test
    server starts (its start-up is the long pole; this work hides behind it)."""
    try:
        t0 = time.perf_counter()
        from spojit_engine.llm import litellm_module

        litellm_module().token_counter(model=MODEL, text="warm up")
        box["bench"] = Bench(workdir)
        box["seconds"] = time.perf_counter() - t0
    except BaseException as exc:  # re-raised by the main thread
        box["error"] = exc


# ---------------------------------------------------------------------------------------------
# 1a. Inside a Prefect flow

# (metered, unmetered with the node's tags, plain) per node kind
TRIPLES = (("map_metered", "map_tagged", "map_plain"), ("llm_metered", "llm_tagged", "llm_plain"))
# the plain map task plus one durable commit: the floor of one ledger transaction per call
FLOOR = "map_floor"
BATCHED_PREFIX = "batched:"  # the map variants again, in a run with a reservation
RESERVE_CREDITS = Decimal("100000")
WARMUP_CALLS = 2


def _unmetered_twin(node: Any, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The node's Prefect task as the node builds it for an original run (tags, result and cache
    settings, retry rule), called as the node calls it, running ``fn`` unmetered: what Prefect
    costs a node."""
    from prefect import Task

    from spojit_engine.nodes.calls import call_identity

    t = node.task
    name = f"{node.name}-twin"

    def run(value: Any, call_id: str | None = None) -> Any:
        return fn(value)

    twin = Task(run, name=name, tags=t.tags, retries=t.retries,
                retry_condition_fn=t.retry_condition_fn, cache_key_fn=t.cache_key_fn,
                persist_result=t.persist_result, cache_expiration=t.cache_expiration)  # fmt: skip
    return lambda value: twin(value, call_identity(name, value))


def bench_prefect(b: Bench, rounds: int, n: int, block: int, log: Any) -> dict[str, Any]:
    from prefect import flow, task

    map_tags, llm_tags = set(b.map_node.task.tags), set(b.llm_node.task.tags)
    args = {k: (1 if k.startswith("map") else TEXT) for triple in TRIPLES for k in triple}
    variants = {
        "map_metered": b.map_node,  # as a flow calls it: Node.__call__ -> its task
        "map_tagged": _unmetered_twin(b.map_node, b.fn),
        "map_plain": task(name="shape-plain")(b.fn),
        "llm_metered": b.llm_node,
        "llm_tagged": _unmetered_twin(b.llm_node, b.plain_llm),
        "llm_plain": task(name="extract-plain")(b.plain_llm),
        FLOOR: task(name="shape-floor")(b.floor_fn),
    }
    args[FLOOR] = 1

    @flow(name="spojit-bench-metering", persist_result=False, validate_parameters=False)
    def bench_flow(round_no: int, reserved: bool = False) -> dict[str, list[float]]:
        triples = TRIPLES[:1] if reserved else ((*TRIPLES[0], FLOOR), *TRIPLES[1:])
        if reserved:  # group commit: the run's map charges are batched against a reservation
            from prefect.context import FlowRunContext

            context = FlowRunContext.get()
            assert context is not None and context.flow_run is not None
            b.reserved_runs.append(str(context.flow_run.id))
            b.engine.reserve_run(b.ws_id, RESERVE_CREDITS, flow_run_id=b.reserved_runs[-1])
        names = [name for triple in triples for name in triple]
        times: dict[str, list[float]] = {k: [] for v in names for k in (v, v + ":cpu")}
        for name in names:  # warm-up, not counted
            for _ in range(WARMUP_CALLS):
                variants[name](args[name])
        perf, busy = time.perf_counter, time.thread_time
        for blk in range(max(1, n // block)):
            for triple in triples:
                shift = (blk + round_no) % len(triple)  # each variant leads in turn
                for name in triple[shift:] + triple[:shift]:
                    call, arg = variants[name], args[name]
                    out, out_cpu = times[name], times[name + ":cpu"]
                    for _ in range(block):
                        c0, t0 = busy(), perf()
                        call(arg)
                        out.append(perf() - t0)
                        out_cpu.append(busy() - c0)
        return times

    keys = [*variants, *(BATCHED_PREFIX + k for k in TRIPLES[0])]
    per_round: dict[str, list[float]] = {k: [] for k in keys}
    pooled: dict[str, list[float]] = {k: [] for k in keys}
    pooled_cpu: dict[str, list[float]] = {k: [] for k in keys}
    flow_s: list[float] = []
    for r in range(rounds):
        t0 = time.perf_counter()
        times = bench_flow(r)
        flow_s.append(time.perf_counter() - t0)
        batched = bench_flow(r, reserved=True)
        b.engine.close_run_reservation(b.reserved_runs[-1])  # commits what is still batched
        times.update({BATCHED_PREFIX + k: v for k, v in batched.items()})
        for k in keys:
            per_round[k].append(median(times[k]) * 1e3)
            pooled[k].extend(x * 1e3 for x in times[k])
            pooled_cpu[k].extend(x * 1e3 for x in times[k + ":cpu"])
        log(
            f"  prefect round {r + 1}/{rounds} ({flow_s[-1]:.1f} s, load {_load():.2f}): "
            + "  ".join(f"{k} {per_round[k][-1]:.1f}" for k in keys)
            + " ms"
        )
    out: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_variant_per_round": max(1, n // block) * block,
        "block": block,
        "tags": {"map": sorted(map_tags), "llm": sorted(llm_tags)},
        "flow_wall_s": flow_s,
        "median_ms": {k: median(v) for k, v in pooled.items()},
        "mean_ms": {k: _mean(v) for k, v in pooled.items()},
        "p90_ms": {k: _quantile(v, 0.9) for k, v in pooled.items()},
        "max_ms": {k: max(v) for k, v in pooled.items()},
        "cpu_median_ms": {k: median(v) for k, v in pooled_cpu.items()},
        "round_median_ms": per_round,
        "target": TARGET_RATIO,
    }
    med = out["median_ms"]
    out["map_floor_ratio"] = med[FLOOR] / med["map_plain"]
    out["map_floor_ms"] = med[FLOOR] - med["map_plain"]
    batched_triple = tuple(BATCHED_PREFIX + k for k in TRIPLES[0])
    for metered, tagged, plain in (*TRIPLES, batched_triple):
        kind = metered.split("_")[0] if metered in variants else "map_batched"
        out[f"{kind}_ratio"] = med[metered] / med[plain]
        out[f"{kind}_round_ratios"] = [
            m / p for m, p in zip(per_round[metered], per_round[plain], strict=True)
        ]
        out[f"{kind}_ratio_vs_tagged"] = med[metered] / med[tagged]
        out[f"{kind}_round_ratios_vs_tagged"] = [
            m / t for m, t in zip(per_round[metered], per_round[tagged], strict=True)
        ]
        out[f"{kind}_overhead_ms"] = med[metered] - med[plain]
        out[f"{kind}_metering_ms"] = med[metered] - med[tagged]
        out[f"{kind}_tags_ms"] = med[tagged] - med[plain]
        cpu = out["cpu_median_ms"]
        out[f"{kind}_metering_cpu_ms"] = cpu[metered] - cpu[tagged]
    return out


# ---------------------------------------------------------------------------------------------
# 1b. Outside Prefect: µs per call, and each metering step alone


def _calls_us(fn: Callable[[], Any], k: int) -> tuple[float, float]:
    """(wall, this thread's CPU) µs per call over ``k`` calls; CPU time does not count the
    waits (fsync, other processes holding the cores), so it is the steadier of the two here."""
    c0, t0 = time.thread_time(), time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k * 1e6, (time.thread_time() - c0) / k * 1e6


def bench_direct(b: Bench, repeats: int, k: int, log: Any) -> dict[str, Any]:
    from spojit_engine.llm import litellm_module
    from spojit_engine.metering.core.records import Usage
    from spojit_engine.metering.meter.runtime import use_runtime
    from spojit_engine.metering.store.usage import UsageRow, record_usage
    from spojit_engine.nodes.mock_values import example_of

    litellm = litellm_module()
    ledger, ws, book = b.engine.ledger, b.ws_id, b.runtime.book
    seq = itertools.count()
    messages = b.completion_kwargs["messages"]

    def named(call: Callable[[Any], Any], arg: Any) -> Callable[[], Any]:
        def run() -> Any:
            with use_runtime(b.runtime_named):
                return call(arg)

        return run

    def debit() -> Any:
        return ledger.debit(
            ws,
            amount_ucr=book.base("transform.map"),
            key=f"bench-debit-{next(seq)}",
            usage=Usage(node_type="transform.map"),
        )

    def usage_row() -> Any:
        return record_usage(
            b.engine.sa_engine,
            UsageRow(
                key=f"bench-usage-{next(seq)}", workspace_id=ws, workflow=None, flow_run_id=None,
                task_run_id=None, attempt=1, node_name="shape", node_type="transform",
                mode="map", models=None, tokens_in=0, tokens_out=0, tokens_cached=0,
                llm_calls=0, credits_ucr=100_000, member_id=None, test_run=False, status="ok",
                error=None, created_at=ledger.clock(),
            ),
        )  # fmt: skip

    def hold_settle() -> Any:
        hold = ledger.hold(
            ws,
            amount_ucr=10_000,
            key=f"bench-hold-{next(seq)}",
            ttl=timedelta(minutes=10),
            usage=Usage(node_type="transform.structured"),
        )
        return ledger.settle(hold.id, actual_ucr=1_000)

    def mock_reply() -> Any:
        reply = json.dumps(example_of(b.Invoice, TEXT))
        return litellm.token_counter(model=MODEL, text=reply)

    # (key, label, fn, group); the groups' first row is the unmetered baseline
    rows: list[tuple[str, str, Callable[[], Any], str]] = [
        ("map_bare", "map: the bare function", lambda: b.fn(1), "map"),
        ("map_call", "map: Transform.call (metered)", lambda: b.map_node.call(1), "map"),
        (
            "map_call_named",
            "map: Transform.call, default_workspace set",
            named(b.map_node.call, 1),
            "map",
        ),
        ("llm_plain", "llm: litellm.completion + validate", lambda: b.plain_llm(TEXT), "llm"),
        ("llm_call", "llm: Transform.call (metered)", lambda: b.llm_node.call(TEXT), "llm"),
        (
            "llm_call_named",
            "llm: Transform.call, default_workspace set",
            named(b.llm_node.call, TEXT),
            "llm",
        ),
        ("workspaces", "Engine.workspaces() (finds the 1 workspace)", b.engine.workspaces, "step"),
        ("workspace_id", "Engine.workspace_id(name) (tag/default)", lambda: b.engine.workspace_id(WORKSPACE), "step"),  # noqa: E501
        ("debit", "Ledger.debit (base price)", debit, "step"),
        ("usage", "record_usage (usage row)", usage_row, "step"),
        ("hold_settle", "Ledger.hold + Ledger.settle (per LLM call)", hold_settle, "step"),
        ("token_prompt", "litellm.token_counter(messages) (for the hold)", lambda: litellm.token_counter(model=MODEL, messages=messages), "step"),  # noqa: E501
        ("mock_reply", "mock reply: example_of + token_counter", mock_reply, "node"),
        ("schema_dump", "prompt: json.dumps(schema.model_json_schema())", lambda: json.dumps(b.Invoice.model_json_schema()), "node"),  # noqa: E501
    ]  # fmt: skip
    us: dict[str, list[float]] = {key: [] for key, *_ in rows}
    cpu: dict[str, list[float]] = {key: [] for key, *_ in rows}
    for _key, _label, fn, _group in rows:  # warm-up
        for _ in range(2):
            fn()
    for r in range(repeats):
        order = rows if r % 2 == 0 else rows[::-1]
        for key, _label, fn, _group in order:
            # the bare function takes ~0.1 µs: many more calls, or the loop is all timer
            wall, busy = _calls_us(fn, k * 1000 if key == "map_bare" else k)
            us[key].append(wall)
            cpu[key].append(busy)
        log(
            f"  direct repeat {r + 1}/{repeats}: map.call {us['map_call'][-1]:.0f} µs, "
            f"llm.call {us['llm_call'][-1]:.0f} µs (load {_load():.2f})"
        )
    med = {key: median(v) for key, v in us.items()}
    med_cpu = {key: median(v) for key, v in cpu.items()}
    return {
        "repeats": repeats,
        "calls_per_repeat": k,
        "labels": {key: label for key, label, *_ in rows},
        "groups": {key: group for key, _l, _f, group in rows},
        "us": us,
        "cpu_us": cpu,
        "median_us": med,
        "median_cpu_us": med_cpu,
        "map_overhead_us": med["map_call"] - med["map_bare"],
        "llm_overhead_us": med["llm_call"] - med["llm_plain"],
        "map_overhead_cpu_us": med_cpu["map_call"] - med_cpu["map_bare"],
        "llm_overhead_cpu_us": med_cpu["llm_call"] - med_cpu["llm_plain"],
    }


# ---------------------------------------------------------------------------------------------
# 2. Pricing one LLM call


def bench_pricing(b: Bench, repeats: int, ours_n: int, litellm_n: int, log: Any) -> dict[str, Any]:
    from spojit_engine.llm import litellm_module
    from spojit_engine.metering.core.pricing import TokenUsage, llm_cost_ucr
    from spojit_engine.metering.meter.runtime import Runtime
    from spojit_engine.money import usd_to_ucr_ceil

    litellm = litellm_module()
    response = litellm.completion(**b.completion_kwargs)
    usage = TokenUsage(
        model=response.model or MODEL,
        tokens_in=int(response.usage.prompt_tokens),
        tokens_out=int(response.usage.completion_tokens),
    )
    credits_per_usd = b.runtime.book.credits_per_usd

    cold = Runtime.create(b.engine).prices  # a fresh table: the first lookup fills it
    t0 = time.perf_counter()
    cold.price(usage.model)
    cold_ms = (time.perf_counter() - t0) * 1e3

    prices = b.runtime.prices
    price = prices.price  # bound once, as Meter.price_call would look it up per call

    def ours() -> int:
        return llm_cost_ucr(price(usage.model), usage, credits_per_usd)

    def theirs() -> float:
        return float(litellm.completion_cost(completion_response=response))

    ours(), theirs()  # warm-up
    ours_us: list[float] = []
    theirs_us: list[float] = []
    for r in range(repeats):
        order = (("ours", ours, ours_n), ("theirs", theirs, litellm_n))
        for side, fn, number in order if r % 2 == 0 else order[::-1]:
            per_call = timeit.timeit(fn, number=number) / number * 1e6
            (ours_us if side == "ours" else theirs_us).append(per_call)
    log(f"  pricing: ours {median(ours_us):.2f} µs, litellm {median(theirs_us):.0f} µs")
    ours_ucr = ours()
    theirs_usd = theirs()
    theirs_ucr = usd_to_ucr_ceil(Decimal(str(theirs_usd)), credits_per_usd)
    return {
        "repeats": repeats,
        "model": usage.model,
        "tokens_in": usage.tokens_in,
        "tokens_out": usage.tokens_out,
        "ours_number": ours_n,
        "litellm_number": litellm_n,
        "ours_us": ours_us,
        "litellm_us": theirs_us,
        "ours_median_us": median(ours_us),
        "litellm_median_us": median(theirs_us),
        "ratio_litellm_over_ours": median(theirs_us) / median(ours_us),
        "cold_first_lookup_ms": cold_ms,
        "ours_ucr": ours_ucr,
        "litellm_usd": theirs_usd,
        "litellm_as_ucr": theirs_ucr,
        "target_us": TARGET_PRICE_US,
    }


# ---------------------------------------------------------------------------------------------
# Profile (separate mode)


def _group(file: str, func: str) -> str:
    if file == "~":
        if "sqlite3" in func and "commit" in func:
            return "sqlite3 commit (WAL fsync)"
        if "sqlite3" in func:
            return "sqlite3 other C (execute, fetch)"
        return "builtins (other C)"
    for part, name in (
        ("/sqlalchemy/", "sqlalchemy (python)"),
        ("/spojit_engine/", "spojit_engine (python)"),
        ("/litellm/", "litellm (python)"),
        ("/tiktoken", "tiktoken"),
        ("/pydantic", "pydantic"),
        ("/prefect/", "prefect (python)"),
    ):
        if part in file:
            return name
    return "stdlib/other python"


def profile_calls(b: Bench, n: int) -> str:
    from spojit_engine.metering.meter.runtime import use_runtime

    out = io.StringIO()
    with use_runtime(b.runtime):
        for label, call, arg in (
            ("map Transform.call", b.map_node.call, 1),
            ("llm Transform.call (structured, mock)", b.llm_node.call, TEXT),
        ):
            for _ in range(5):
                call(arg)
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                call(arg)
            prof.disable()
            stats = pstats.Stats(prof)
            groups: dict[str, float] = {}
            total = 0.0
            for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
                total += tt
                groups[_group(file, func)] = groups.get(_group(file, func), 0.0) + tt
            out.write(
                f"\ncProfile of {n} x {label} outside Prefect; "
                f"total {total:.2f}s, {total / n * 1e3:.1f} ms/call (profiled)\n"
            )
            for key, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
                out.write(f"  {key:<36} {100 * tt / total:5.1f}%  {tt / n * 1e3:7.2f} ms/call\n")
            out.write("\n  spojit_engine functions by cumulative time:\n")
            rows = [
                (ct, nc, f"{Path(file).relative_to(ROOT)}:{line}({func})")
                for (file, line, func), (_cc, nc, _tt, ct, _c) in stats.stats.items()  # type: ignore[attr-defined]
                if "/spojit_engine/" in file
            ]
            for ct, nc, where in sorted(rows, reverse=True)[:18]:
                out.write(f"  {ct / n * 1e3:8.2f} ms/call  {nc / n:5.1f}x  {where}\n")
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Output


def _verdict_le(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add("")
    add(f"spojit_engine metering benchmark  ({res['mode']} run, {res['host']})")
    add(
        f"load avg (1 min): {res['load']['start']:.2f} at start, "
        f"{res['load']['before_prefect']:.2f} before the Prefect rounds, "
        f"{res['load']['end']:.2f} at end"
    )
    add(
        f"ledger: SQLite {res['sqlite_version']} file in {res['dir']} ({res['fs']}), WAL, "
        f"synchronous=FULL; fsync of 4 KiB there: median {res['fsync_ms']:.2f} ms"
    )
    add(
        f"Prefect {res['versions']['prefect']} test server (prefect_test_harness), logging "
        f"WARNING; LiteLLM {res['versions']['litellm']}, mock mode; model {MODEL}"
    )
    add(
        f"fixed costs: imports {res['imports_s']:.0f} s, test server start "
        f"{res['harness_start_s']:.0f} s (LiteLLM import + ledger set-up alongside, "
        f"{res['prepare_s']:.0f} s)"
    )
    p = res["prefect"]
    add("")
    add(
        f"1. One task inside a Prefect flow — {p['rounds']} flows x "
        f"{p['calls_per_variant_per_round']} calls per variant (blocks of {p['block']}, "
        f"interleaved), ms per task"
    )
    add("")
    add(f"   {'':<40}{'median':>7} {'mean':>7} {'p90':>7} {'CPU':>6}   per-round medians")
    labels = {
        "map_metered": "map: Transform(...).task (metered)",
        "map_tagged": "map: the node's task, unmetered",
        "map_plain": "map: plain prefect.task",
        "llm_metered": "llm: Transform(structured).task",
        "llm_tagged": "llm: node's task, unmetered",
        "llm_plain": "llm: plain task, same completion",
        FLOOR: "map: plain task + one durable commit",
    }
    labels.update({BATCHED_PREFIX + k: labels[k] + ", reserved run" for k in TRIPLES[0]})
    batched_triple = tuple(BATCHED_PREFIX + k for k in TRIPLES[0])
    for triple in (*TRIPLES, batched_triple):
        shown = (*triple, FLOOR) if triple is TRIPLES[0] else triple
        for k in shown:
            add(
                f"   {labels[k]:<40}{p['median_ms'][k]:>7.1f} {p['mean_ms'][k]:>7.1f} "
                f"{p['p90_ms'][k]:>7.1f} {p['cpu_median_ms'][k]:>6.1f}   "
                + " ".join(f"{x:.1f}" for x in p["round_median_ms"][k])
            )
        kind = "map_batched" if triple is batched_triple else triple[0].split("_")[0]
        ratio = p[f"{kind}_ratio"]
        target = TARGET_RATIO_BATCHED if kind == "map_batched" else p["target"]
        add(
            f"   {'  ratio metered/plain':<40}{ratio:>6.2f}x {'':>22}   "
            + " ".join(f"{x:.2f}" for x in p[f"{kind}_round_ratios"])
            + f"   target <= {target}x -> {_verdict_le(ratio, target)}"
        )
        add(
            f"   {'  ratio metered/unmetered (metering)':<40}"
            f"{p[f'{kind}_ratio_vs_tagged']:>6.2f}x {'':>22}   "
            + " ".join(f"{x:.2f}" for x in p[f"{kind}_round_ratios_vs_tagged"])
        )
        add(
            f"   {'  per task, medians: metered - plain':<40}{p[f'{kind}_overhead_ms']:>7.1f} ms"
            f" = metering {p[f'{kind}_metering_ms']:.1f} ms (metered - unmetered)"
            f" + the node task's Prefect options {p[f'{kind}_tags_ms']:.1f} ms"
        )
        add(
            f"   {'  metering, main-thread CPU medians':<40}"
            f"{p[f'{kind}_metering_cpu_ms']:>7.1f} ms (metered - unmetered)"
        )
        if triple is TRIPLES[0]:
            add(
                f"   {'  floor: (plain + durable commit)/plain':<40}"
                f"{p['map_floor_ratio']:>6.2f}x  (+{p['map_floor_ms']:.1f} ms: no ledger that "
                f"commits each call durably does better here)"
            )
    d = res["direct"]
    add("")
    add(
        f"   Outside Prefect, runtime bound (node.call still meters) — median of "
        f"{d['repeats']} x {d['calls_per_repeat']} calls, µs per call"
    )
    med, cpu = d["median_us"], d["median_cpu_us"]
    add(f"   {'':<48}{'wall':>10}{'CPU':>10}")
    for key, label in d["labels"].items():
        group = d["groups"][key]
        if group in ("step", "node"):
            continue
        extra = ""
        if key.endswith("_call") or key.endswith("_call_named"):
            base = "map_bare" if group == "map" else "llm_plain"
            extra = f"   (+{med[key] - med[base]:,.0f} wall, +{cpu[key] - cpu[base]:,.0f} CPU)"
        add(f"   {label:<48}{med[key]:>10,.1f}{cpu[key]:>10,.1f}{extra}")
    add("   each metering step alone:")
    for key, label in d["labels"].items():
        if d["groups"][key] == "step":
            add(f"     {label:<46}{med[key]:>10,.1f}{cpu[key]:>10,.1f}")
    add("   the LLM node's own work the plain task skips (not metering):")
    for key, label in d["labels"].items():
        if d["groups"][key] == "node":
            add(f"     {label:<46}{med[key]:>10,.1f}{cpu[key]:>10,.1f}")
    map_keys = ("workspaces", "debit", "usage")
    llm_keys = (*map_keys, "hold_settle", "token_prompt")
    add(
        f"   map: workspaces + debit + usage = {sum(med[x] for x in map_keys):,.0f} wall / "
        f"{sum(cpu[x] for x in map_keys):,.0f} CPU; measured Transform.call - bare = "
        f"{d['map_overhead_us']:,.0f} / {d['map_overhead_cpu_us']:,.0f}"
    )
    add(
        f"   llm: those + hold/settle + prompt tokens = {sum(med[x] for x in llm_keys):,.0f} / "
        f"{sum(cpu[x] for x in llm_keys):,.0f}, node work "
        f"{med['mock_reply'] + med['schema_dump']:,.0f} / "
        f"{cpu['mock_reply'] + cpu['schema_dump']:,.0f}; measured Transform.call - plain = "
        f"{d['llm_overhead_us']:,.0f} / {d['llm_overhead_cpu_us']:,.0f}"
    )
    q = res["pricing"]
    add("")
    add(
        f"2. Pricing one LLM call ({q['model']}, {q['tokens_in']} in / {q['tokens_out']} out) — "
        f"median of {q['repeats']} timeit repeats, µs per call"
    )
    add(
        f"   {'ours: ModelPriceTable.price + llm_cost_ucr':<48}{q['ours_median_us']:>10.2f}   "
        f"target <= {q['target_us']:g} µs -> {_verdict_le(q['ours_median_us'], q['target_us'])}"
        f"   ({q['ours_number']} calls per repeat)"
    )
    add(
        f"   {'litellm.completion_cost(completion_response=r)':<48}"
        f"{q['litellm_median_us']:>10.2f}   ({q['litellm_number']} calls per repeat)"
    )
    add(f"   {'litellm / ours':<48}{q['ratio_litellm_over_ours']:>9.0f}x")
    same = "equal" if q["ours_ucr"] == q["litellm_as_ucr"] else "DIFFER"
    add(
        f"   same price: ours {q['ours_ucr']} µcr; litellm {q['litellm_usd']!r} USD -> "
        f"{q['litellm_as_ucr']} µcr ({same}); first lookup in a fresh table "
        f"{q['cold_first_lookup_ms']:.1f} ms"
    )
    add("")
    add(
        f"ledger after the run: {res['entries_end']} entries, Engine.verify ok; "
        f"total wall time {res['wall_s']:.0f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (~1 min)")
    ap.add_argument("--json", action="store_true", help="print results as JSON only")
    ap.add_argument("--rounds", type=int, help="Prefect flows (default 5, quick 2)")
    ap.add_argument(
        "--calls", type=int, help="task calls per variant per flow (default 15, quick 10)"
    )
    ap.add_argument("--dir", type=Path, help="where the ledger and PREFECT_HOME go (default: temp)")
    ap.add_argument(
        "--profile", action="store_true", help="only cProfile node.call outside Prefect and exit"
    )
    args = ap.parse_args(argv)

    rounds = args.rounds or (2 if args.quick else 5)
    calls = args.calls or (10 if args.quick else 15)
    block = 5
    repeats, k = (3, 8) if args.quick else (5, 20)
    p_repeats, ours_n, litellm_n = (5, 5_000, 100) if args.quick else (7, 20_000, 300)

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.1f}s] {msg}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="spojit-bench-metering-", dir=args.dir))
    _set_env(workdir)
    try:
        load_start = _load()
        log(f"importing (load {load_start:.2f}) ...")
        from spojit_engine.metering.meter.runtime import use_runtime

        if args.profile:
            solo = Bench(workdir)
            with use_runtime(solo.runtime):
                solo.capture_completion_kwargs()
            print(profile_calls(solo, 100))
            solo.engine.close()
            return 0

        # Imported here, before the set-up thread starts, so the two never race on a module.
        import prefect
        import prefect.server.database.dependencies  # the harness imports it
        from prefect.testing.utilities import prefect_test_harness

        import spojit_engine  # noqa: F401

        imports_s = time.perf_counter() - started
        box: dict[str, Any] = {}
        prep = threading.Thread(target=_prepare, args=(workdir, box), daemon=True)
        prep.start()
        log("starting the Prefect test server (LiteLLM import and ledger set-up alongside) ...")
        t_h = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=300):
            harness_s = time.perf_counter() - t_h
            prep.join()
            if "error" in box:
                raise box["error"]
            b: Bench = box["bench"]
            log(f"  server up in {harness_s:.1f} s (LiteLLM + ledger took {box['seconds']:.1f} s)")
            with use_runtime(b.runtime):
                b.capture_completion_kwargs()
                log(f"outside Prefect: {repeats} repeats x {k} calls per row ...")
                direct = bench_direct(b, repeats, k, log)
                load_prefect = _load()
                log(
                    f"Prefect: {rounds} flows x {calls} calls per variant "
                    f"(load {load_prefect:.2f}) ..."
                )
                pf = bench_prefect(b, rounds, calls, block, log)
            log("pricing ...")
            pricing = bench_pricing(b, p_repeats, ours_n, litellm_n, log)
        entries_end = b.entries()
        b.engine.verify(b.ws_id)  # raises LedgerCorrupt if the metered ledger does not balance
        import sqlite3

        res = {
            "mode": "quick" if args.quick else "full",
            "host": (
                f"{platform.python_implementation()} {platform.python_version()}, "
                f"{os.cpu_count()} CPUs"
            ),
            "load": {"start": load_start, "before_prefect": load_prefect, "end": _load()},
            "versions": {"prefect": prefect.__version__, "litellm": _version("litellm")},
            "sqlite_version": sqlite3.sqlite_version,
            "dir": str(workdir),
            "fs": fs_type(workdir),
            "fsync_ms": _fsync_ms(workdir),
            "imports_s": imports_s,
            "harness_start_s": harness_s,
            "prepare_s": box["seconds"],
            "prefect": pf,
            "direct": direct,
            "pricing": pricing,
            "entries_end": entries_end,
            "wall_s": time.perf_counter() - started,
        }
        b.engine.close()
        print(json.dumps(res, indent=2, default=str) if args.json else render(res))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    code = main()
    # Skip the interpreter's teardown of LiteLLM's module state (~5 s on a busy 2-core box);
    # everything of ours is closed and removed by now, and the exit handlers still run.
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)
