"""Internet scale, simulated: per-debit latency as workspaces and history grow, and throughput as
clients grow across workspaces, on PostgreSQL.

    .venv/bin/python bench/simulate_scale.py                       # 10k workspaces, 1 M entries
    .venv/bin/python bench/simulate_scale.py --entries 10000000    # the 10 M case (tens of minutes)
    .venv/bin/python bench/simulate_scale.py --quick   # small stages, seconds: what CI runs
    .venv/bin/python bench/simulate_scale.py --database spojit_sim --keep   # a named scratch db

No ledger transaction spans two workspaces, so the ledger partitions by workspace; this checks
that nothing on the hot path grows with the number of workspaces or the length of history.

A scratch database (``--database``, default ``spojit_sim_<random>``, and its baseline
``<name>_base``, created on ``--pg-url``'s server, dropped at the end unless ``--keep``) is
migrated (its ledger partitioned by workspace: migration ``0013_partitions``), then loaded
straight in SQL (``generate_series``; secondary indexes dropped during the load and rebuilt
after; triggers off with ``session_replication_role = replica``, so the loader writes the keys
and daily rollups itself) in stages up to ``--workspaces`` and ``--entries``: 1k workspaces /
100k entries, 10k / 1 M, 10k / 10 M (``--quick``: 200 / 2k, then 1k / 20k). Each workspace
holds one large adjustment grant (its grant entry and posting) and a history of small debits,
each an entry with its posting, spread round-robin over the workspaces; grants'
``remaining_ucr`` and the materialised balances are moved by exactly the loaded postings, so
``Engine.verify`` holds (checked on a sample). At each stage, through the real ``Engine.debit``:

1. latency: one client, debits to random workspaces, in alternating blocks with the same on a
   baseline database of the first stage's size; median and p95 µs and the ratio to the baseline;
2. throughput: 1, 2, 4, 8 client processes, each on its own slice of workspaces, the counts
   alternating over three rounds; median debits/s and the ratio to one client (a 2-core machine
   runs out of CPU for the clients themselves early);
3. EXPLAIN of the hot path's reads: which index each one uses.

It checks one thing, and exits non-zero when it fails: ``verify`` passes on sampled workspaces
after each stage and after all the debits. The rest are numbers; ``--json`` prints them as one
object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scale_load import Loader, log  # noqa: E402  (bench/ is this script's directory)

PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
STAGES = ((1_000, 100_000), (10_000, 1_000_000), (10_000, 10_000_000))
QUICK_STAGES = ((200, 2_000), (1_000, 20_000))
QUICK = {"debits": 80, "seconds": 0.5, "clients": [1, 2]}  # what --quick sets
CLIENTS = (1, 2, 4, 8)
DATABASE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,57}")  # leaves room for "_base"
BENCH_DEBIT = "0.001"  # credits per measured debit
VERIFY_SAMPLE = 20  # workspaces verified after each stage
THROUGHPUT_ROUNDS = 3  # each client count measured this many times, alternating
LATENCY_ROUNDS = 8  # alternating blocks of debits: this stage, then the baseline database


# -- measuring ------------------------------------------------------------------------------------


def _engine(url: str) -> Any:
    from spojit_engine import Engine

    return Engine(url)


def _debit_times(engine: Any, workspaces: int, samples: int, tag: str, rng: Any) -> list[float]:
    """µs per ``Engine.debit`` of one client, to random workspaces."""
    times = []
    for i in range(samples):
        ws = f"sim{rng.randint(1, workspaces):08d}"
        began = time.perf_counter_ns()
        engine.debit(ws, BENCH_DEBIT, key=f"{tag}:{i}", workflow="bench")
        times.append((time.perf_counter_ns() - began) / 1000)
    return times


def measure_latency(
    url: str, workspaces: int, baseline: tuple[str, int], samples: int, stage: int
) -> tuple[list[float], list[float]]:
    """µs per debit here and on the baseline database (the first stage's size: its url and
    workspaces), in alternating blocks, so the machine's noise falls on both alike."""
    baseline_url, first_workspaces = baseline
    here, base = _engine(url), _engine(baseline_url)
    rng = random.Random(stage)
    here_t: list[float] = []
    base_t: list[float] = []
    try:
        _debit_times(here, workspaces, 10, f"warm:{stage}", rng)
        _debit_times(base, first_workspaces, 10, f"warm:{stage}", rng)
        block = max(10, samples // LATENCY_ROUNDS)
        for r in range(LATENCY_ROUNDS):
            here_t += _debit_times(here, workspaces, block, f"lat:{stage}:{r}", rng)
            base_t += _debit_times(base, first_workspaces, block, f"lat:{stage}:{r}", rng)
    finally:
        here.close()
        base.close()
    return here_t, base_t


def _client(url: str, index: int, workspaces: int, orders: Any, out: Any) -> None:
    """One client process: for each order (clients, seconds, tag) debit random workspaces of
    its slice until the time is up, and report how many."""
    engine = _engine(url)
    rng = random.Random(index)
    engine.debit(f"sim{index + 1:08d}", BENCH_DEBIT, key=f"warm:{uuid.uuid4().hex}")
    out.put(0)  # ready
    while (order := orders.get()) is not None:
        clients, seconds, tag = order
        mine = range(index + 1, workspaces + 1, clients)
        done, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            ws = f"sim{rng.choice(mine):08d}"
            engine.debit(ws, BENCH_DEBIT, key=f"{tag}:{index}:{done}", workflow="bench")
            done += 1
        out.put(done)
    engine.close()


def measure_throughput(
    url: str, workspaces: int, clients: list[int], seconds: float, stage: int
) -> dict[int, int]:
    """Median debits/s of 1, 2, 4, 8 … client processes, each on its own slice of workspaces;
    the client counts alternate over ``THROUGHPUT_ROUNDS`` so the machine's noise falls on all."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    orders = [ctx.Queue() for _ in range(max(clients))]
    procs = [
        ctx.Process(target=_client, args=(url, i, workspaces, orders[i], out))
        for i in range(max(clients))
    ]
    for p in procs:
        p.start()
    for _ in procs:
        out.get(timeout=300)  # every client imported the engine and warmed up
    rates: dict[int, list[float]] = {c: [] for c in clients}
    try:
        for r in range(THROUGHPUT_ROUNDS):
            for c in clients:
                for i in range(c):
                    orders[i].put((c, seconds, f"tp:{stage}:{r}:{c}"))
                rates[c].append(sum(out.get(timeout=seconds + 120) for _ in range(c)) / seconds)
    finally:
        for q in orders:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
    return {c: round(statistics.median(v)) for c, v in rates.items()}


def verify_sample(url: str, workspaces: int) -> int:
    engine = _engine(url)
    try:
        for w in random.Random(0).sample(range(1, workspaces + 1), min(VERIFY_SAMPLE, workspaces)):
            engine.verify(f"sim{w:08d}")
    finally:
        engine.close()
    return min(VERIFY_SAMPLE, workspaces)


# -- the run --------------------------------------------------------------------------------------


def stages(args: argparse.Namespace) -> list[tuple[int, int]]:
    """The (workspaces, entries) stages up to ``--workspaces`` and ``--entries``."""
    if args.quick:
        return list(QUICK_STAGES)
    workspaces, entries = args.workspaces, args.entries
    wanted = [(w, e) for w, e in STAGES if w <= workspaces and e <= entries]
    if not wanted or wanted[-1] != (workspaces, entries):
        wanted.append((workspaces, entries))
    return wanted


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    admin = args.pg_url.replace("+psycopg", "")
    name = args.database or f"spojit_sim_{uuid.uuid4().hex[:8]}"
    names = (name, f"{name}_base")
    planned = stages(args)
    with psycopg.connect(admin, autocommit=True) as conn:
        for each in names:
            conn.execute(f'CREATE DATABASE "{each}"')
    url, baseline_url = (admin.rsplit("/", 1)[0] + f"/{each}" for each in names)
    os.environ.setdefault("SPOJIT_HOME", tempfile.mkdtemp(prefix="spojit_sim_"))
    result: dict[str, Any] = {"database": name, "quick": args.quick, "stages": [],
                              "load_start": os.getloadavg()}  # fmt: skip
    try:
        for each in (url, baseline_url):
            _engine(each).close()  # migrates the scratch databases
        Loader(baseline_url).grow(*planned[0])
        loader = Loader(url)
        for index, (workspaces, entries) in enumerate(planned):
            log(f"stage {index}: loading {workspaces:,} workspaces, {entries:,} entries")
            load_s = loader.grow(workspaces, entries)
            verified = verify_sample(url, workspaces)
            lat, base = measure_latency(
                url, workspaces, (baseline_url, planned[0][0]), args.debits, index
            )
            stage: dict[str, Any] = {
                "workspaces": workspaces,
                "entries": loader.entries,
                "load_seconds": round(load_s, 1),
                "verified_workspaces": verified,
                "debit_us_median": round(statistics.median(lat)),
                "debit_us_p95": round(statistics.quantiles(lat, n=20)[-1]),
                "baseline_us_median": round(statistics.median(base)),
                "latency_vs_baseline": round(statistics.median(lat) / statistics.median(base), 2),
                "throughput": {},
                "load": os.getloadavg()[0],
                "baseline": {"workspaces": planned[0][0], "entries": planned[0][1]},
            }
            log(f"  throughput with {args.clients} clients")
            stage["throughput"] = measure_throughput(
                url, workspaces, args.clients, args.seconds, index
            )
            stage["explain"] = loader.explain()
            result["stages"].append(stage)
            print_stage(stage, file=sys.stderr)
        result["verified_after"] = verify_sample(url, planned[-1][0])
    finally:
        result["load_end"] = os.getloadavg()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                for each in names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{each}" WITH (FORCE)')
    return result


def print_stage(stage: dict[str, Any], file: Any = sys.stdout) -> None:
    one = stage["throughput"].get(1) or 1
    print(
        f"{stage['workspaces']:>7,} workspaces {stage['entries']:>11,} entries "
        f"(loaded in {stage['load_seconds']:.0f} s, load avg {stage['load']:.2f}): "
        f"debit median {stage['debit_us_median']} µs, p95 {stage['debit_us_p95']} µs; "
        f"x{stage['latency_vs_baseline']:.2f} the baseline's {stage['baseline_us_median']} µs "
        f"({stage['baseline']['workspaces']:,} workspaces, {stage['baseline']['entries']:,}"
        " entries, measured alongside)",
        file=file,
    )
    tp = ", ".join(f"{c} → {n:,}/s (x{n / one:.2f})" for c, n in stage["throughput"].items())
    print(f"    throughput by clients: {tp}", file=file)
    for what, plan in stage.get("explain", []):
        print(f"    {what:<18} {plan}", file=file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("SPOJIT_BENCH_PG_URL", PG_DEFAULT_URL))
    parser.add_argument("--workspaces", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--debits", type=int, default=400, help="latency samples per stage")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--database", help="the scratch database's name (and NAME_base)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--quick", action="store_true", help="small stages, in seconds (CI)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    if args.database is not None and not DATABASE_NAME.fullmatch(args.database):
        parser.error("--database takes letters, digits and underscores, starting with a letter.")
    if args.entries < args.workspaces:
        parser.error("--entries must be at least --workspaces (one grant entry each).")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(f"load average at start {result['load_start']}, at end {result['load_end']}")
    for stage in result["stages"]:
        print_stage(stage)
    print(f"verify: {result['verified_after']} sampled workspaces exact after all debits")


if __name__ == "__main__":
    main()
