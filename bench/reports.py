"""Report latency at 10k, 100k and 1M usage records, and the usage card's requests/s under load.

    .venv/bin/python bench/reports.py                  # SQLite and PostgreSQL, 10k/100k/1M
    .venv/bin/python bench/reports.py --quick          # 10k and 100k only, shorter load test
    .venv/bin/python bench/reports.py --code /tmp/base # measure another checkout's package
    .venv/bin/python bench/reports.py --json

1. Latency. One workspace whose current period (20 days old, anchored mid-day) holds N usage
   records: N debit entries and N usage records (runs of 5 node calls; 20 workflows, 6 node
   types, 5 members, 10 % test runs), spread evenly over the period. The rows are loaded in bulk
   (executemany / COPY), not through ``Engine.debit`` — a million debits would take most of an
   hour here; when the code under test has the daily rollup, it is rebuilt with the same query
   ``verify`` checks it against (what the ledger keeps in each debit's transaction). Then the
   median of REPS calls of: the card (``Engine.balance``), the breakdown per workflow and node
   type and per member, the timeline (when the code has one) and the newest 20 executions.
   Target: each <= 100 ms at 1M.

2. Load. ``GET /api/v1/usage`` (uvicorn, one process) from 16 client threads for SECS seconds,
   alone and while 8 processes debit the same workspace as fast as they can: requests/s and
   debits/s. Before the read-path change every card took the ledger's write lock, so it queued
   behind the debits.

"Before" figures come from a checkout of the commit before the change (``git archive <rev> |
tar -x -C /tmp/base``, then ``--code /tmp/base``); nothing in the package keeps the old path.
The machine is shared and noisy: medians, ratios and the load average are printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
SIZES = (10_000, 100_000, 1_000_000)
REPS = 9
CLIENTS = 16
DEBITORS = 8
WORKFLOWS = [f"workflow-{i:02d}" for i in range(20)]
NODE_TYPES = ["connector.direct", "connector.agent", "transform.structured", "knowledge",
              "condition", "loop"]  # fmt: skip
LLM_TYPES = {"connector.agent": "gpt-4o", "transform.structured": "gpt-4.1-nano",
             "knowledge": "gpt-4o-mini"}  # fmt: skip
RUN_SIZE = 5  # node calls per flow run


def _use_code(code: Path) -> None:
    """Import ``spojit_engine`` from ``code`` here and in every process started from here."""
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(code), os.environ.get("PYTHONPATH")])
    )


def _median_ms(fn: Any, reps: int) -> float:
    fn()  # warm: caches, plans, the first connection
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# -- data ---------------------------------------------------------------------------------------


def _rows(ws: str, members: list[str], start: int, count: int, begin: datetime, span: float) -> Any:
    """(entry, usage record) tuples for records start..start+count, times spread over ``span``."""
    rnd = random.Random(start)
    for i in range(start, start + count):
        run = i // RUN_SIZE
        workflow = WORKFLOWS[run % len(WORKFLOWS)]
        node_type = NODE_TYPES[(run + i) % len(NODE_TYPES)]
        member = members[run % len(members)]
        test_run = run % 10 == 0
        ucr = rnd.randint(1_000, 3_000_000) if node_type in LLM_TYPES else 1_000
        at = begin + timedelta(seconds=span * (i - start) / count)  # each batch spans the period
        key = f"node:run-{run}:1:n{i % RUN_SIZE}:{i}"
        entry = (ws, f"{key}:base", "debit", -ucr, 0, workflow, node_type, member, test_run,
                 key, at)  # fmt: skip
        base, _, mode = node_type.partition(".")
        llm_calls = 1 if node_type in LLM_TYPES else 0
        record = (key, ws, workflow, f"run-{run:09d}", None, 1, f"n{i % RUN_SIZE}", base,
                  mode or None, LLM_TYPES.get(node_type), 100, 50, 0, llm_calls, ucr, member,
                  test_run, "ok", None, at)  # fmt: skip
        yield entry, record


ENTRY_COLUMNS = ("workspace_id, key, kind, amount_ucr, held_ucr, workflow, node_type, member_id,"
                 " test_run, node_call, created_at")  # fmt: skip
USAGE_COLUMNS = ("key, workspace_id, workflow, flow_run_id, task_run_id, attempt, node_name,"
                 " node_type, mode, models, tokens_in, tokens_out, tokens_cached, llm_calls,"
                 " credits_ucr, member_id, test_run, status, error, created_at")  # fmt: skip


def _load(engine: Any, rows: list[tuple[Any, Any]]) -> None:
    raw = engine.sa_engine.raw_connection()
    try:
        if engine.sa_engine.dialect.name == "sqlite":
            conn: Any = raw.driver_connection
            ts = "%Y-%m-%d %H:%M:%S.%f"
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                f"INSERT INTO entries ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                [
                    (*e[:8], int(e[8]), e[9], e[10].replace(tzinfo=None).strftime(ts))
                    for e, _ in rows
                ],
            )
            conn.executemany(
                f"INSERT INTO usage_records ({USAGE_COLUMNS}) VALUES ({', '.join('?' * 20)})",
                [(*u[:16], int(u[16]), *u[17:19], u[19].replace(tzinfo=None).strftime(ts))
                 for _, u in rows],
            )  # fmt: skip
            conn.execute("COMMIT")
        else:
            cur = raw.cursor()
            with cur.copy(f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN") as copy:
                for e, _ in rows:
                    copy.write_row((*e[:10], e[10].replace(tzinfo=None)))
            with cur.copy(f"COPY usage_records ({USAGE_COLUMNS}) FROM STDIN") as copy:
                for _, u in rows:
                    copy.write_row((*u[:19], u[19].replace(tzinfo=None)))
            raw.commit()
    finally:
        raw.close()
    _rebuild_rollups(engine)


def _rebuild_rollups(engine: Any) -> None:
    try:
        from spojit_engine.metering.reads.rollup_verify import rebuild_rollups
    except ImportError:  # code from before the rollup: nothing to keep up
        return
    with engine.sa_engine.begin() as conn:
        rebuild_rollups(conn)
    if engine.sa_engine.dialect.name != "sqlite":
        with engine.sa_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")


# -- 1. latency ---------------------------------------------------------------------------------


def latency(url: str, sizes: tuple[int, ...], log: Any) -> dict[str, dict[str, float]]:
    from spojit_engine import Engine

    now = datetime.now(UTC)
    begin = (now - timedelta(days=20)).replace(hour=10, minute=23, second=0, microsecond=0)
    engine = Engine(url)
    ws = engine.create_workspace("bench", plan="business", period_start=begin).id
    members = [engine.add_member(ws, f"m{i}@bench.io").id for i in range(5)]
    span = (now - begin).total_seconds() - 60
    loaded, out = 0, {}
    for size in sizes:
        t0 = time.perf_counter()
        batch = 100_000
        while loaded < size:
            count = min(batch, size - loaded)
            _load(engine, list(_rows(ws, members, loaded, count, begin, span)))
            loaded += count
        log(f"  loaded {size:,} records in {time.perf_counter() - t0:.0f} s")
        reads: dict[str, Any] = {
            "card": lambda: engine.balance(ws),
            "breakdown": lambda: engine.breakdown(ws, by=("workflow", "node_type")),
            "breakdown/member": lambda: engine.breakdown(ws, by=("member",)),
            "executions": lambda: engine.executions(ws, limit=20),
        }
        if hasattr(engine, "timeline"):
            reads["timeline"] = lambda: engine.timeline(ws)
        out[f"{size}"] = {name: _median_ms(fn, REPS) for name, fn in reads.items()}
        log(f"  {size:>9,}: " + "  ".join(f"{k} {v:.1f} ms" for k, v in out[f"{size}"].items()))
    engine.close()
    return out


# -- 2. load ------------------------------------------------------------------------------------


def _debitor(url: str, ws: str, idx: int, ready: Any, stop: Any, counts: Any) -> None:
    from spojit_engine import Engine

    engine = Engine(url)
    engine.balance(ws)  # connected and warm
    ready.wait()
    n = 0
    while not stop.is_set():
        engine.debit(ws, Decimal("0.001"), key=f"load-{idx}-{n}-{os.getpid()}", workflow="load")
        n += 1
    counts[idx] = n
    engine.close()


def _serve(url: str, port: int, code: Path) -> subprocess.Popen[bytes]:
    script = (
        f"import sys; sys.path.insert(0, {str(code)!r}); import uvicorn;"
        "from spojit_engine import Engine; from spojit_engine.web.app import create_app;"
        f"uvicorn.run(create_app(Engine({url!r})), host='127.0.0.1', port={port},"
        " log_level='warning')"
    )
    return subprocess.Popen([sys.executable, "-c", script])


def _hammer(port: int, token: str, secs: float) -> tuple[int, int]:
    import httpx

    stop = time.perf_counter() + secs
    done, failed = [0], [0]
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            ok = bad = 0
            while time.perf_counter() < stop:
                r = http.get("/api/v1/usage", headers={"Authorization": f"Bearer {token}"})
                ok, bad = (ok + 1, bad) if r.status_code == 200 else (ok, bad + 1)
            with lock:
                done[0] += ok
                failed[0] += bad

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], failed[0]


def load(url: str, code: Path, secs: float, port: int, log: Any) -> dict[str, float]:
    import httpx

    from spojit_engine import Engine

    engine = Engine(url)
    ws = engine.create_workspace("load", plan="business").id
    engine.grant(ws, Decimal("100000000"), kind="topup", key="load-seed")
    token = engine.add_member(ws, "ana@load.io", role="admin").token
    engine.close()
    server = _serve(url, port, code)
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/plans", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        alone, _ = _hammer(port, token, secs)
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Barrier(DEBITORS + 1), ctx.Event()
        counts = ctx.Array("i", DEBITORS)
        procs = [ctx.Process(target=_debitor, args=(url, ws, i, ready, stop, counts))
                 for i in range(DEBITORS)]  # fmt: skip
        for p in procs:
            p.start()
        ready.wait()  # every debitor has its engine; all start together
        before = time.perf_counter()
        busy, failed = _hammer(port, token, secs)
        stop.set()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - before
        result = {
            "usage_rps_alone": alone / secs,
            "usage_rps_while_debiting": busy / secs,
            "failed_requests": float(failed),
            "debits_per_s": sum(counts) / elapsed,
        }
        log("  " + "  ".join(f"{k} {v:.1f}" for k, v in result.items()))
        return result
    finally:
        server.terminate()
        server.wait()


# -- main ---------------------------------------------------------------------------------------


def _pg_database(name: str, *, drop: bool) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only; 3 s load")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--parts", default="latency,load", help="latency, load or both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _use_code(args.code.resolve())
    sizes = SIZES[:2] if args.quick else SIZES
    secs = 3.0 if args.quick else 6.0
    logs: list[str] = []

    def log(msg: str) -> None:
        logs.append(msg)
        if not args.json:
            print(msg, flush=True)

    results: dict[str, Any] = {"code": str(args.code), "load_before": os.getloadavg()}
    log(f"code {args.code}  load average {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")
    for backend in args.backends.split(","):
        log(f"{backend}:")
        with tempfile.TemporaryDirectory() as tmp:
            for part in args.parts.split(","):
                db = f"spojit_bench_{part}_{os.getpid()}"
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/{part}.db"
                else:
                    url = _pg_database(db, drop=False)
                try:
                    if part == "latency":
                        results[f"{backend}/latency_ms"] = latency(url, sizes, log)
                    else:
                        results[f"{backend}/load"] = load(url, args.code, secs, 8700, log)
                finally:
                    if backend != "sqlite":
                        _pg_database(db, drop=True)
    results["load_after"] = os.getloadavg()
    log(f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
