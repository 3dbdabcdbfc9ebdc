"""Ledger throughput: ``Engine.debit`` against the same work done without the engine.

    .venv/bin/python bench/ledger.py            # full run (~2-3 min)
    .venv/bin/python bench/ledger.py --quick    # shorter run (< ~45 s)
    .venv/bin/python bench/ledger.py --json     # machine-readable results instead of the table
    .venv/bin/python bench/ledger.py --profile  # only: cProfile of engine debits on SQLite

1. SQLite. ``Engine.debit`` on a fresh file vs a plain ``sqlite3`` loop on another fresh file
   (same schema: ``spojit_engine.db.make_engine`` + ``migrate``; same pragmas: WAL,
   synchronous=FULL, foreign_keys=ON) running the statements one engine debit runs:
   BEGIN IMMEDIATE; SELECT workspace; SELECT grants with remaining > 0; INSERT entry;
   INSERT posting; UPDATE grant; UPDATE workspace; COMMIT.  Rounds alternate engine and raw;
   the table shows medians.  Target: engine/raw >= 0.25x.

2. PostgreSQL (a temporary database on the server, dropped afterwards).  Eight client
   processes, each its own ``Engine``: all on ONE workspace (they serialise on its row lock,
   the honest case for one busy workspace) and each on ITS OWN workspace (scale-out), vs
   ``pgbench -N -c 8 -j 2 -T <secs>`` on a ``pgbench -i -s 1`` schema in the same database.
   Target: engine/pgbench >= 0.5x.  Also shown, as a reference: one client alone (latency
   bound: one round trip and one commit per debit), and each scenario's client CPU per debit.
   On two cores the eight clients and their backends share the CPU, so the engine's CPU per
   debit, client and server, is its throughput.

No assertions: it prints numbers.  Nothing here touches the engine's code.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import fs_type, median  # noqa: E402  (bench/ is the script's directory)

AMOUNT = Decimal("0.001")  # credits per debit
AMOUNT_UCR = 1000  # the same in µcr (1 credit = 1_000_000 µcr)
SEED = Decimal("100000000")
PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_CLIENTS = 8

# ---------------------------------------------------------------------------------------------
# Shared helpers


def _seed_workspace(engine: Any, name: str) -> str:
    ws = engine.create_workspace(name, plan="business")
    engine.grant(ws.id, SEED, kind="topup", key=f"seed-{name}")
    return str(ws.id)


# ---------------------------------------------------------------------------------------------
# 1. SQLite


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_engine_setup(path: Path) -> tuple[Any, str]:
    from spojit_engine import Engine

    engine = Engine(_sqlite_url(path))
    return engine, _seed_workspace(engine, "bench")


def _engine_debits(engine: Any, ws_id: str, n: int, prefix: str) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) for ``n`` engine debits."""
    debit = engine.debit
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        debit(ws_id, AMOUNT, key=f"{prefix}-{i}")
    return time.perf_counter() - t0, time.process_time() - c0


_RAW_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON")

# The statement texts the engine's SQLite dialect emits for one debit (captured from its
# before_cursor_execute events), so sqlite parses and plans exactly the same SQL.
_SQL_WORKSPACE = (
    "SELECT workspaces.id, workspaces.name, workspaces.plan_id, workspaces.pending_plan_id, "
    "workspaces.anchor_at, workspaces.period_start, workspaces.period_end, "
    "workspaces.next_due_at, workspaces.credits_ucr, workspaces.held_ucr, "
    "workspaces.overdraft_ucr \nFROM workspaces \nWHERE workspaces.id = ?"
)
_SQL_GRANTS = (
    "SELECT grants.id, grants.priority, grants.effective_at, grants.expires_at, "
    "grants.remaining_ucr \nFROM grants \n"
    "WHERE grants.workspace_id = ? AND grants.remaining_ucr > ?"
)
_SQL_ENTRY = (
    'INSERT INTO entries (workspace_id, "key", kind, amount_ucr, held_ucr, grant_id, hold_id, '
    "workflow, node_type, member_id, test_run, reason, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_POSTING = (
    "INSERT INTO postings (entry_id, workspace_id, grant_id, amount_ucr) VALUES (?, ?, ?, ?)"
)
_SQL_GRANT_MOVE = (
    "UPDATE grants SET remaining_ucr=(grants.remaining_ucr + ?) WHERE grants.id = ? "
    "AND grants.remaining_ucr + ? >= ? AND grants.remaining_ucr + ? <= grants.amount_ucr"
)
_SQL_WORKSPACE_MOVE = (
    "UPDATE workspaces SET next_due_at=?, credits_ucr=?, held_ucr=?, overdraft_ucr=? "
    "WHERE workspaces.id = ?"
)


def _raw_setup(path: Path) -> tuple[sqlite3.Connection, str]:
    """Schema via make_engine + migrate; the same seed rows as the engine side (workspace with
    its business allowance, plus the top-up); then a plain sqlite3 connection, same pragmas."""
    from spojit_engine import Engine
    from spojit_engine.db import make_engine, migrate

    sa = make_engine(_sqlite_url(path))
    migrate(sa)
    sa.dispose()
    seeder = Engine(_sqlite_url(path))  # migrate() is a no-op now; used only to seed the rows
    ws_id = _seed_workspace(seeder, "bench")
    seeder.close()
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=60.0)
    for pragma in _RAW_PRAGMAS:
        conn.execute(pragma)
    return conn, ws_id


_NONE5 = (None,) * 5


def _ts(moment: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime stores (naive UTC, microseconds always present).
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _raw_debits(conn: sqlite3.Connection, ws_id: str, n: int, prefix: str) -> tuple[float, float]:
    """(wall, CPU) seconds for ``n`` raw debits: the engine's statements, minimal Python."""
    execute = conn.execute
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        now = _ts(datetime.now(UTC))
        execute("BEGIN IMMEDIATE")
        try:
            ws = execute(_SQL_WORKSPACE, (ws_id,)).fetchone()
            if ws is None or not now < ws[7]:
                raise RuntimeError("workspace missing or due for maintenance")
            # spendable + burn order: effective, unexpired; priority, expiry (never last), age, id
            live = [
                g
                for g in execute(_SQL_GRANTS, (ws_id, 0)).fetchall()
                if g[2] <= now and (g[3] is None or now < g[3])
            ]
            live.sort(key=lambda g: (g[1], g[3] is None, g[3] or "", g[2], g[0]))
            available = sum(g[4] for g in live) - ws[9] - ws[10]
            if available < AMOUNT_UCR or live[0][4] < AMOUNT_UCR:
                raise RuntimeError("bench workspace ran out of credits")
            grant_id = live[0][0]
            cur = execute(
                _SQL_ENTRY,
                # workspace_id, key, kind, amount, held, grant_id, hold_id, workflow,
                # node_type, member_id, test_run, reason, created_at
                (ws_id, f"{prefix}-{i}", "debit", -AMOUNT_UCR, 0, *_NONE5, 0, None, now),
            )
            entry_id = cur.lastrowid
            execute(_SQL_POSTING, (entry_id, ws_id, grant_id, -AMOUNT_UCR))
            moved = execute(
                _SQL_GRANT_MOVE, (-AMOUNT_UCR, grant_id, -AMOUNT_UCR, 0, -AMOUNT_UCR)
            ).rowcount
            if moved != 1:
                raise RuntimeError("grant left its range")
            execute(_SQL_WORKSPACE_MOVE, (ws[7], ws[8] - AMOUNT_UCR, ws[9], ws[10], ws_id))
            execute("COMMIT")
        except BaseException:
            execute("ROLLBACK")
            raise
    return time.perf_counter() - t0, time.process_time() - c0


def _check_sqlite_pragmas(engine: Any, conn: sqlite3.Connection) -> dict[str, Any]:
    def read(c: Any) -> dict[str, Any]:
        return {
            p: c.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("journal_mode", "synchronous", "foreign_keys")
        }

    raw_conn = engine.sa_engine.raw_connection()
    try:
        engine_side = read(raw_conn.driver_connection)
    finally:
        raw_conn.close()
    return {"engine": engine_side, "raw": read(conn)}


def bench_sqlite(rounds: int, n: int, warmup: int, workdir: Path, log: Any) -> dict[str, Any]:
    engine_path, raw_path = workdir / "engine.db", workdir / "raw.db"
    engine, e_ws = _sqlite_engine_setup(engine_path)
    conn, r_ws = _raw_setup(raw_path)
    pragmas = _check_sqlite_pragmas(engine, conn)
    _engine_debits(engine, e_ws, warmup, "warm")
    _raw_debits(conn, r_ws, warmup, "warm")
    e_rates: list[float] = []
    r_rates: list[float] = []
    e_cpu: list[float] = []
    r_cpu: list[float] = []
    for r in range(rounds):
        order = ("engine", "raw") if r % 2 == 0 else ("raw", "engine")
        for side in order:
            if side == "engine":
                wall, cpu = _engine_debits(engine, e_ws, n, f"r{r}")
                e_rates.append(n / wall)
                e_cpu.append(cpu / n * 1e6)
            else:
                wall, cpu = _raw_debits(conn, r_ws, n, f"r{r}")
                r_rates.append(n / wall)
                r_cpu.append(cpu / n * 1e6)
        log(
            f"  sqlite round {r + 1}/{rounds}: "
            f"engine {e_rates[-1]:8.0f}/s  raw {r_rates[-1]:8.0f}/s"
        )
    # Both ledgers must still balance: the engine's own check, and the same sums on raw.
    engine.verify(e_ws)
    credits, grants_left = conn.execute(
        "SELECT w.credits_ucr, "
        "(SELECT SUM(remaining_ucr) FROM grants g WHERE g.workspace_id = w.id) "
        "FROM workspaces w WHERE w.id = ?",
        (r_ws,),
    ).fetchone()
    engine.close()
    conn.close()
    e_med, r_med = median(e_rates), median(r_rates)
    return {
        "rounds": rounds,
        "debits_per_round": n,
        "engine_per_s": e_rates,
        "raw_per_s": r_rates,
        "engine_median": e_med,
        "raw_median": r_med,
        "engine_cpu_us_median": median(e_cpu),
        "raw_cpu_us_median": median(r_cpu),
        "ratio": e_med / r_med,
        "target": 0.25,
        "raw_balanced": credits == grants_left,
        "pragmas": pragmas,
        "sqlite_version": sqlite3.sqlite_version,
        "dir": str(workdir),
        "fs": fs_type(workdir),
    }


# ---------------------------------------------------------------------------------------------
# 2. PostgreSQL


def _pg_worker(url: str, idx: int, cmd_q: Any, res_q: Any, barrier: Any) -> None:
    """One client process with its own Engine; runs timed debit bursts on command."""
    try:
        from spojit_engine import Engine

        engine = Engine(url)
    except BaseException as exc:
        res_q.put(("error", idx, repr(exc)))
        barrier.abort()
        return
    res_q.put(("ready", idx, None))
    while True:
        cmd = cmd_q.get()
        if cmd is None:
            break
        ws_id, secs, prefix = cmd
        if ws_id is None:  # not in this scenario: just keep the barrier's party count
            try:
                barrier.wait(timeout=180)
                res_q.put(("done", idx, (0, 0.0, 0.0)))
            except BaseException as exc:
                res_q.put(("error", idx, repr(exc)))
            continue
        try:
            for j in range(3):  # warm the connection and SQLAlchemy's compiled cache
                engine.debit(ws_id, AMOUNT, key=f"{prefix}-w{idx}-{j}")
            barrier.wait(timeout=120)
            n = 0
            c0, t0 = time.process_time(), time.perf_counter()
            end = t0 + secs
            while True:
                engine.debit(ws_id, AMOUNT, key=f"{prefix}-{idx}-{n}")
                n += 1
                if time.perf_counter() >= end:
                    break
            res_q.put(("done", idx, (n, time.perf_counter() - t0, time.process_time() - c0)))
        except BaseException as exc:
            res_q.put(("error", idx, repr(exc)))
            with contextlib.suppress(Exception):
                barrier.abort()
    engine.close()


class _PgClients:
    """PG_CLIENTS long-lived worker processes (spawned once, reused across rounds)."""

    def __init__(self, url: str, n: int) -> None:
        # fork: the children inherit the imported modules (no re-import on a busy 2-core box);
        # the parent holds no pooled connection of its own at this point.
        ctx: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.n = n
        self.barrier = ctx.Barrier(n + 1)
        self.res_q = ctx.Queue()
        self.cmd_qs = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(
                target=_pg_worker,
                args=(url, i, self.cmd_qs[i], self.res_q, self.barrier),
                daemon=True,
            )
            for i in range(n)
        ]
        for p in self.procs:
            p.start()
        for _ in range(n):
            kind, idx, info = self.res_q.get(timeout=180)
            if kind != "ready":
                raise RuntimeError(f"PG client {idx} failed to start: {info}")

    def run(
        self, ws_ids: list[str], secs: float, prefix: str, active: int | None = None
    ) -> tuple[float, float]:
        """One timed burst of the first ``active`` clients (client i debits ws_ids[i % len]):
        (aggregate debits/s, client CPU µs per debit)."""
        active = self.n if active is None else active
        for i, q in enumerate(self.cmd_qs):
            q.put((ws_ids[i % len(ws_ids)] if i < active else None, secs, prefix))
        self.barrier.wait(timeout=180)
        total, longest, cpu = 0, 0.0, 0.0
        for _ in range(self.n):
            kind, idx, info = self.res_q.get(timeout=secs + 120)
            if kind != "done":
                raise RuntimeError(f"PG client {idx} failed: {info}")
            total += info[0]
            longest = max(longest, info[1])
            cpu += info[2]
        return total / longest, cpu / max(total, 1) * 1e6

    def close(self) -> None:
        for q in self.cmd_qs:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()


def _pg_parts(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "database": u.database or "postgres",
    }


def _pgbench(args: list[str], parts: dict[str, Any], db: str, pgbench: str) -> str:
    cmd = [pgbench, "-h", parts["host"], "-p", str(parts["port"]), "-U", parts["user"], *args, db]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout + done.stderr


def _pgbench_tps(out: str) -> float:
    m = re.search(r"^tps = ([0-9.]+) \(without initial connection", out, re.M) or re.search(
        r"^tps = ([0-9.]+)", out, re.M
    )
    if not m:
        raise RuntimeError(f"no tps in pgbench output:\n{out}")
    return float(m.group(1))


def bench_pg(url: str, rounds: int, secs: float, log: Any) -> dict[str, Any]:
    try:
        import psycopg
    except ImportError as exc:
        return {"skipped": f"psycopg not importable: {exc}"}
    parts = _pg_parts(url)
    admin_dsn = (
        f"host={parts['host']} port={parts['port']} user={parts['user']} "
        f"dbname={parts['database']} connect_timeout=5"
    )
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        return {"skipped": f"PostgreSQL at {parts['host']}:{parts['port']} unavailable: {reason}"}
    db = f"spojit_bench_{os.getpid()}"
    bench_url = f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{db}"
    settings = {
        name: (admin.execute(f"SHOW {name}").fetchone() or ("?",))[0]
        for name in (
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
            "max_connections",
        )
    }
    result: dict[str, Any] = {"database": db, "settings": settings, "clients": PG_CLIENTS}
    clients: _PgClients | None = None
    admin.execute(f'CREATE DATABASE "{db}"')
    try:
        from spojit_engine import Engine

        setup = Engine(bench_url)  # migrates the temp database
        one_ws = _seed_workspace(setup, "bench")
        many_ws = [_seed_workspace(setup, f"bench-{i}") for i in range(PG_CLIENTS)]
        setup.close()

        pgbench = shutil.which("pgbench") or (
            "/usr/bin/pgbench" if Path("/usr/bin/pgbench").exists() else None
        )
        if pgbench:
            version = subprocess.run([pgbench, "--version"], capture_output=True, text=True)
            result["pgbench_version"] = version.stdout.strip()
            log("  pgbench -i -s 1 ...")
            _pgbench(["-i", "-s", "1", "-q"], parts, db, pgbench)
        else:
            result["pgbench_skipped"] = "pgbench not found; comparison skipped"

        log(f"  starting {PG_CLIENTS} client processes ...")
        clients = _PgClients(bench_url, PG_CLIENTS)
        log("  clients ready")
        scenarios = ["engine_1client", "engine_1ws", "engine_8ws"] + (
            ["pgbench"] if pgbench else []
        )
        runs: dict[str, list[float]] = {k: [] for k in scenarios}
        cpu_us: dict[str, list[float]] = {k: [] for k in scenarios if k != "pgbench"}
        for r in range(rounds):
            order = scenarios[r % len(scenarios) :] + scenarios[: r % len(scenarios)]
            for name in order:
                if name == "engine_1client":
                    tps, cpu = clients.run([one_ws], secs, f"solo-r{r}", active=1)
                    cpu_us[name].append(cpu)
                elif name == "engine_1ws":
                    tps, cpu = clients.run([one_ws], secs, f"one-r{r}")
                    cpu_us[name].append(cpu)
                elif name == "engine_8ws":
                    tps, cpu = clients.run(many_ws, secs, f"many-r{r}")
                    cpu_us[name].append(cpu)
                else:
                    assert pgbench is not None
                    out = _pgbench(
                        ["-N", "-c", str(PG_CLIENTS), "-j", "2", "-T", str(int(secs))],
                        parts,
                        db,
                        pgbench,
                    )
                    tps = _pgbench_tps(out)
                runs[name].append(tps)
            log(
                f"  pg round {r + 1}/{rounds}: "
                + "  ".join(f"{k} {v[-1]:7.0f}/s" for k, v in runs.items() if v)
            )
        clients.close()
        clients = None
        check = Engine(bench_url)
        result["verified_workspaces"] = check.verify()
        check.close()
        result.update(
            {
                "rounds": rounds,
                "secs_per_run": secs,
                "runs": runs,
                "medians": {k: median(v) for k, v in runs.items() if v},
                "client_cpu_us_medians": {k: median(v) for k, v in cpu_us.items() if v},
                "target": 0.5,
            }
        )
        med = result["medians"]
        if "pgbench" in med:
            result["ratios"] = {
                "engine_1ws": med["engine_1ws"] / med["pgbench"],
                "engine_8ws": med["engine_8ws"] / med["pgbench"],
            }
    finally:
        if clients is not None:
            clients.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
    return result


# ---------------------------------------------------------------------------------------------
# Profile (separate mode)


def profile_sqlite(n: int, workdir: Path) -> str:
    """cProfile of ``n`` engine debits on SQLite, tottime grouped by where the code lives."""
    engine, ws = _sqlite_engine_setup(workdir / "profile.db")
    _engine_debits(engine, ws, 200, "warm")
    prof = cProfile.Profile()
    prof.enable()
    _engine_debits(engine, ws, n, "prof")
    prof.disable()
    engine.close()
    stats = pstats.Stats(prof)
    groups: dict[str, float] = {}
    total = 0.0
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        if file == "~":
            if "sqlite3" in func and ("commit" in func or "execute" in func):
                key = f"sqlite3 C: {func}"
            elif "sqlite3" in func:
                key = "sqlite3 C: other"
            else:
                key = "builtins (other C)"
        elif "/sqlalchemy/" in file:
            key = "sqlalchemy (python)"
        elif "/spojit_engine/" in file:
            key = "spojit_engine (python)"
        elif "/pydantic" in file or "/sqlmodel/" in file:
            key = "pydantic/sqlmodel"
        else:
            key = "stdlib/other python"
        groups[key] = groups.get(key, 0.0) + tt
    out = io.StringIO()
    out.write(
        f"cProfile of {n} engine debits (SQLite); "
        f"total {total:.2f}s, {total / n * 1e6:.0f} µs/debit\n"
    )
    for key, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        out.write(
            f"  {key:<44} {tt:7.3f}s  {100 * tt / total:5.1f}%  {tt / n * 1e6:7.1f} µs/debit\n"
        )
    out.write("\nTop 25 by cumulative time:\n")
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Output


def _verdict(ratio: float, target: float) -> str:
    return "meets" if ratio >= target else "BELOW"


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add("")
    add(f"spojit_engine ledger benchmark  ({res['mode']} run, {res['host']})")
    s = res["sqlite"]
    add("")
    add(
        f"1. SQLite {s['sqlite_version']}  —  "
        f"{s['rounds']} rounds x {s['debits_per_round']} debits, single client, medians"
    )
    add(f"   files in {s['dir']} ({s['fs']}); pragmas engine={s['pragmas']['engine']}")
    add(f"   {'':<10}raw={s['pragmas']['raw']}")
    add("   per debit: BEGIN IMMEDIATE; SELECT workspace; SELECT grants remaining>0; INSERT entry;")
    add("              INSERT posting; UPDATE grant; UPDATE workspace; COMMIT")
    add("")
    add(f"   {'':<24}{'debits/s':>10}  {'µs/debit':>9}  {'CPU µs':>7}   debits/s per round")
    add(
        f"   {'Engine.debit':<24}{s['engine_median']:>10.0f}  {1e6 / s['engine_median']:>9.0f}  "
        f"{s['engine_cpu_us_median']:>7.0f}   " + " ".join(f"{x:.0f}" for x in s["engine_per_s"])
    )
    add(
        f"   {'raw sqlite3 loop':<24}{s['raw_median']:>10.0f}  {1e6 / s['raw_median']:>9.0f}  "
        f"{s['raw_cpu_us_median']:>7.0f}   " + " ".join(f"{x:.0f}" for x in s["raw_per_s"])
    )
    add(
        f"   {'ratio engine/raw':<24}{s['ratio']:>9.2f}x   target >= {s['target']}x  "
        f"-> {_verdict(s['ratio'], s['target'])}"
    )
    add("")
    p = res["pg"]
    if p is None:
        add("2. PostgreSQL: not run (--no-pg)")
    elif "skipped" in p:
        add(f"2. PostgreSQL: skipped — {p['skipped']}")
    else:
        st = p["settings"]
        add(
            f"2. PostgreSQL {st['server_version']}  —  {p['clients']} clients, "
            f"{p['rounds']} rounds x {p['secs_per_run']:g} s per scenario, medians "
            f"(temp database {p['database']}, dropped)"
        )
        add("   settings: " + ", ".join(f"{k}={v}" for k, v in st.items() if k != "server_version"))
        add(
            f"   engine: 8 processes, one Engine each (psycopg 3, pooled); "
            f"{p.get('verified_workspaces', '?')} workspaces verified after the run"
        )
        if "pgbench_version" in p:
            add(
                f"   pgbench: {p['pgbench_version']}; "
                f"-i -s 1, then -N -c 8 -j 2 -T {int(p['secs_per_run'])}"
            )
        add("")
        add(f"   {'':<36}{'tps':>7}  {'client CPU µs/debit':>19}   tps per round")
        labels = {
            "engine_1client": "Engine.debit, 1 client (reference)",
            "engine_1ws": "Engine.debit, 8 clients, 1 ws",
            "engine_8ws": "Engine.debit, 8 clients, 8 ws",
            "pgbench": "pgbench -N -c 8 (simple-update)",
        }
        cpus = p.get("client_cpu_us_medians", {})
        for k, label in labels.items():
            if k in p["medians"]:
                cpu_txt = f"{cpus[k]:.0f}" if k in cpus else "-"
                add(
                    f"   {label:<36}{p['medians'][k]:>7.0f}  {cpu_txt:>19}   "
                    + " ".join(f"{x:.0f}" for x in p["runs"][k])
                )
        if "ratios" in p:
            # The target is for 8 workspaces; one hot workspace is reported beside it (issue 11).
            for k, label in (("engine_1ws", "1 ws"), ("engine_8ws", "8 ws")):
                r = p["ratios"][k]
                verdict = (
                    f"target >= {p['target']}x  -> {_verdict(r, p['target'])}"
                    if k == "engine_8ws"
                    else "reported beside it, no target"
                )
                add(f"   {'ratio 8 clients ' + label + ' / pgbench':<36}{r:>6.2f}x   {verdict}")
        else:
            add(f"   pgbench comparison skipped: {p.get('pgbench_skipped', 'pgbench unavailable')}")
    add("")
    add(f"total wall time {res['wall_s']:.0f} s; load avg at end {res['load_end']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (< ~45 s)")
    ap.add_argument("--json", action="store_true", help="print results as JSON only")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("SPOJIT_BENCH_PG_URL", PG_DEFAULT_URL),
        help=f"admin URL; a temp database is created next to it (default {PG_DEFAULT_URL})",
    )
    ap.add_argument("--no-pg", action="store_true", help="SQLite part only")
    ap.add_argument("--rounds", type=int, help="SQLite rounds (default 5, quick 3)")
    ap.add_argument("--debits", type=int, help="SQLite debits per side per round")
    ap.add_argument("--pg-rounds", type=int, help="PostgreSQL rounds (default 3, quick 1)")
    ap.add_argument(
        "--pg-secs", type=float, help="whole seconds per PostgreSQL run (default 6, quick 4)"
    )
    ap.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temp dir)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="only profile engine debits on SQLite with cProfile and exit",
    )
    args = ap.parse_args(argv)

    rounds = args.rounds or (3 if args.quick else 5)
    n = args.debits or (300 if args.quick else 1000)
    pg_rounds = args.pg_rounds or (1 if args.quick else 3)
    pg_secs = max(1.0, float(int(args.pg_secs or (4 if args.quick else 6))))

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.1f}s] {msg}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="spojit-bench-", dir=args.dir))
    try:
        if args.profile:
            print(profile_sqlite(args.debits or 2000, workdir))
            return 0
        t0 = time.perf_counter()
        host = (
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, load avg at start {os.getloadavg()[0]:.2f}"
        )
        log(f"SQLite: {rounds} rounds x {n} debits (engine and raw alternate) ...")
        sqlite_res = bench_sqlite(rounds, n, warmup=100, workdir=workdir, log=log)
        pg_res = None
        if not args.no_pg:
            log(f"PostgreSQL: {pg_rounds} rounds x 4 scenarios x {pg_secs:g} s ...")
            pg_res = bench_pg(args.pg_url, pg_rounds, pg_secs, log)
        res = {
            "mode": "quick" if args.quick else "full",
            "host": host,
            "sqlite": sqlite_res,
            "pg": pg_res,
            "wall_s": time.perf_counter() - t0,
            "load_end": os.getloadavg()[0],
        }
        print(json.dumps(res, indent=2, default=str) if args.json else render(res))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
