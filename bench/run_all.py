"""Every bench in one command, each figure beside the baseline measured in the same run.

    .venv/bin/python bench/run_all.py            # full runs (~10 min)
    .venv/bin/python bench/run_all.py --quick    # short runs (~6 min)
    .venv/bin/python bench/run_all.py --json     # one JSON object (the figures, then details)

Runs bench/ledger.py, bench/metering.py, bench/cli.py and, when it exists, bench/reports.py, each
as its own process with ``--json`` (so one bench's imports and servers never skew another's),
one after the other, and prints the load average around each (the machine is shared: ratios
against a baseline from the same run are what to read). A bench that fails or is absent gives
null for its figures, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# figure -> (bench, how to read it from that bench's JSON, baseline, target, "<=" or ">=")
Figure = tuple[str, Callable[[Any], Any], str, float, str]
FIGURES: dict[str, Figure] = {
    "metering_ratio": ("metering", lambda r: _dig(r, "prefect", "map_ratio"),
                       "metered map node task / plain task", 1.10, "<="),
    "metering_floor_ratio": ("metering", lambda r: _dig(r, "prefect", "map_floor_ratio"),
                             "the plain task + one durable SQLite commit / plain task: the "
                             "least one transaction per call costs", float("nan"), ""),
    "metering_ratio_batched": ("metering", lambda r: _dig(r, "prefect", "map_batched_ratio"),
                               "the same in a run with a reservation (group commit)", 1.05, "<="),
    "pricing_us": ("metering", lambda r: _dig(r, "pricing", "ours_median_us"),
                   "µs; litellm.completion_cost beside it", 20.0, "<="),
    "ledger_sqlite_vs_raw": ("ledger", lambda r: _dig(r, "sqlite", "ratio"),
                             "Engine.debit / raw sqlite3 loop", 0.25, ">="),
    "ledger_pg_vs_pgbench": ("ledger", lambda r: _dig(r, "pg", "ratios", "engine_8ws"),
                             "8 clients, 8 workspaces / pgbench -N -c 8", 0.5, ">="),
    "ledger_pg_hot_vs_pgbench": ("ledger", lambda r: _dig(r, "pg", "ratios", "engine_1ws"),
                                 "8 clients, one workspace / pgbench -N -c 8; reported beside "
                                 "the 8-workspace figure (issue 11), no target", float("nan"), ""),
    "usage_cli_vs_prefect_version": ("cli", lambda r: _dig(r, "ratio"),
                                     "spojit usage --json / prefect version (wall)", 0.2, "<="),
    "breakdown_1m_ms": ("reports", lambda r: _dig(r, "sqlite/latency_ms", "1000000", "breakdown"),
                        "ms, breakdown per workflow and node type over 1M usage records "
                        "(SQLite)", 100.0, "<="),
}  # fmt: skip
# What each figure's baseline was, measured in the same run (shown beside it).
BASELINES: dict[str, Callable[[Any], Any]] = {
    "metering_ratio": lambda r: _dig(r, "prefect", "median_ms", "map_plain"),
    "metering_floor_ratio": lambda r: _dig(r, "prefect", "median_ms", "map_plain"),
    "metering_ratio_batched": lambda r: _dig(r, "prefect", "median_ms", "batched:map_plain"),
    "pricing_us": lambda r: _dig(r, "pricing", "litellm_median_us"),
    "ledger_sqlite_vs_raw": lambda r: _dig(r, "sqlite", "raw_median"),
    "ledger_pg_vs_pgbench": lambda r: _dig(r, "pg", "medians", "pgbench"),
    "ledger_pg_hot_vs_pgbench": lambda r: _dig(r, "pg", "medians", "pgbench"),
    "usage_cli_vs_prefect_version": lambda r: _dig(r, "prefect_version_median_s"),
    "breakdown_1m_ms": lambda r: None,
}
BASELINE_UNITS = {
    "metering_ratio": "ms plain task", "metering_floor_ratio": "ms plain task",
    "metering_ratio_batched": "ms plain task",
    "pricing_us": "µs litellm", "ledger_sqlite_vs_raw": "raw debits/s",
    "ledger_pg_vs_pgbench": "pgbench tps", "ledger_pg_hot_vs_pgbench": "pgbench tps",
    "usage_cli_vs_prefect_version": "s prefect version", "breakdown_1m_ms": "",
}  # fmt: skip


# A bench's arguments for --quick: the reports' quick run stops at 100k records, so --quick runs
# its latency part alone on SQLite, which loads 1M (≈ 2 min) and gives breakdown_1m_ms.
QUICK_ARGS = {"reports": ["--parts", "latency", "--backends", "sqlite"]}


def run_bench(name: str, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """One bench as a process: its JSON, the load around it, or why there is none."""
    script = HERE / f"{name}.py"
    if not script.exists():
        return {"error": f"bench/{name}.py is not in this tree"}
    cmd = [
        sys.executable,
        str(script),
        "--json",
        *(QUICK_ARGS.get(name, ["--quick"]) if quick else []),
    ]
    load_before, t0 = os.getloadavg()[0], time.perf_counter()
    log(f"{name}: {' '.join(cmd[1:])} (load {load_before:.2f}) ...")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    out: dict[str, Any] = {
        "load": {"before": load_before, "after": os.getloadavg()[0]},
        "wall_s": time.perf_counter() - t0,
    }
    if done.returncode != 0:
        out["error"] = f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
        return out
    try:
        out["result"] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        out["error"] = f"not JSON ({exc.msg}): {done.stdout[:200]!r}"
    return out


def figures(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline figures; None with a reason where a bench is absent or failed."""
    out: dict[str, Any] = {}
    for key, (bench, read, _label, _target, _sense) in FIGURES.items():
        run = runs[bench]
        value = read(run["result"]) if "result" in run else None
        out[key] = value
        if value is None:
            out[f"{key}_reason"] = run.get("error") or f"bench/{bench}.py did not report it"
    return out


def render(runs: dict[str, dict[str, Any]], figs: dict[str, Any]) -> str:
    lines = ["", f"{'figure':<30}{'value':>10}  {'baseline (same run)':<28}{'target':>10}  verdict"]
    for key, (bench, _read, label, target, sense) in FIGURES.items():
        value = figs[key]
        run = runs[bench]
        base = BASELINES[key](run["result"]) if "result" in run else None
        base_text = "" if base is None else f"{base:,.2f} {BASELINE_UNITS[key]}"
        if value is None:
            lines.append(f"{key:<30}{'—':>10}  {figs[key + '_reason'][:70]}")
            continue
        met = value <= target if sense == "<=" else value >= target if sense == ">=" else None
        verdict = "" if met is None else ("meets" if met else "MISSES")
        target_text = f"{sense} {target:g}" if sense else ""
        lines.append(f"{key:<30}{value:>10.3f}  {base_text:<28}{target_text:>10}  {verdict}")
        lines.append(f"{'':<30}{'':>10}  ({label})")
    lines.append("")
    for name, run in runs.items():
        if "load" in run:
            lines.append(f"{name:<10} load {run['load']['before']:.2f} -> "
                         f"{run['load']['after']:.2f}, {run['wall_s']:.0f} s")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="each bench's short run")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f}s] {msg}", file=sys.stderr, flush=True)

    runs = {name: run_bench(name, args.quick, log)
            for name in ("ledger", "metering", "cli", "reports")}  # fmt: skip
    figs = figures(runs)
    if args.json:
        print(json.dumps({**figs, "load_end": os.getloadavg()[0], "benches": runs}, indent=2,
                         default=str))  # fmt: skip
    else:
        print(render(runs, figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
