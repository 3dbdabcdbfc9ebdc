"""Command start-up: ``spojit usage --json`` against ``prefect version``, wall time of each as a
new process (what a person waits for), alternating, medians.

    .venv/bin/python bench/cli.py            # 7 runs each
    .venv/bin/python bench/cli.py --quick    # 3 runs each
    .venv/bin/python bench/cli.py --json     # machine-readable

Set-up: a temporary SPOJIT_HOME with ``spojit init`` and one debit, so the card has something to
show; PREFECT_HOME in the same temporary directory. Target: usage/prefect version <= 0.2x.
No assertions: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TARGET = 0.2


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return wall


def bench(runs: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="spojit-bench-cli-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
        env.update(SPOJIT_HOME=str(work / "spojit"), PREFECT_HOME=str(work / "prefect"))
        subprocess.run([str(BIN / "spojit"), "init", "--workspace", "bench"], env=env,
                       check=True, capture_output=True, timeout=600)  # fmt: skip
        usage = [str(BIN / "spojit"), "usage", "--json"]
        prefect = [str(BIN / "prefect"), "version"]
        _timed(usage, env)  # warm the page cache for both
        _timed(prefect, env)
        times: dict[str, list[float]] = {"usage": [], "prefect": []}
        load_start = os.getloadavg()[0]
        for i in range(runs):
            order = (("usage", usage), ("prefect", prefect))
            for name, cmd in order if i % 2 == 0 else order[::-1]:
                times[name].append(_timed(cmd, env))
        med = {k: statistics.median(v) for k, v in times.items()}
        return {
            "runs": runs,
            "usage_json_s": times["usage"],
            "prefect_version_s": times["prefect"],
            "usage_json_median_s": med["usage"],
            "prefect_version_median_s": med["prefect"],
            "ratio": med["usage"] / med["prefect"],
            "target": TARGET,
            "load": {"start": load_start, "end": os.getloadavg()[0]},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 runs each instead of 7")
    ap.add_argument("--json", action="store_true", help="print results as JSON only")
    args = ap.parse_args(argv)
    res = bench(3 if args.quick else 7)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    verdict = "meets" if res["ratio"] <= TARGET else "MISSES"
    print(f"spojit usage --json   median {res['usage_json_median_s']:.2f} s  "
          f"({', '.join(f'{x:.2f}' for x in res['usage_json_s'])})")  # fmt: skip
    print(f"prefect version       median {res['prefect_version_median_s']:.2f} s  "
          f"({', '.join(f'{x:.2f}' for x in res['prefect_version_s'])})")  # fmt: skip
    print(f"ratio {res['ratio']:.2f}x   target <= {TARGET}x -> {verdict}   "
          f"(load {res['load']['start']:.2f} -> {res['load']['end']:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
