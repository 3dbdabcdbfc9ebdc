"""``spojit run --test --sample/--max-credits`` and ``spojit executions [incomplete|resume]`` as a
person runs them: real processes, a fresh SPOJIT_HOME, Prefect's local server, no LLM."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from test_cli_run import RUN_TIMEOUT_SECONDS, ledger, one_sentence, run

from spojit_engine.metering.store.usage import read_usage

pytestmark = pytest.mark.e2e

FLOW = """
from spojit_engine import Connector, Loop, Workflow

def fetch(value):
    return {"got": value}

workflow = Workflow("cli_scoped", [
    Loop("each", Connector("item", fetch)), Connector("n2", fetch), Connector("n3", fetch),
    Connector("n4", fetch),
])
sample_input = [1, 2, 3, 4, 5]
"""


def test_scoped_test_runs_and_a_resumed_run_from_the_command_line(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    flow = tmp_path / "scoped.py"
    flow.write_text(FLOW)
    info = json.loads(run(home, "init", "--workspace", "w", "--plan", "free", "--json").stdout)
    ws = info["workspace_id"]
    engine = ledger(home)

    sampled = run(home, "run", str(flow), "--test", "--sample", "2", "--json",
                  timeout=RUN_TIMEOUT_SECONDS)  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr
    report = json.loads(sampled.stdout)
    assert report["test_run"] is True
    (item,) = [n for n in report["nodes"] if n["node"] == "item"]
    assert (item["calls"], Decimal(item["credits"])) == (2, Decimal(2))  # the sample only
    consumed = engine.balance(ws).consumed

    capped = run(home, "run", str(flow), "--test", "--max-credits", "3.5",
                 timeout=RUN_TIMEOUT_SECONDS)  # fmt: skip
    line = one_sentence(capped)
    assert line.startswith("Error: Test-run cap reached: this test run may spend 3.50 credits")
    spent = engine.balance(ws).consumed - consumed
    assert Decimal(3) <= spent <= Decimal("3.5")
    assert one_sentence(run(home, "run", str(flow), "--sample", "2")).endswith(
        "scopes a test run; add --test."
    )

    # A live run with credits for the loop's one item and n2: refused at n3, kept to resume.
    engine.debit(ws, engine.balance(ws).remaining - Decimal("2.5"), key="leave-2.5")
    refused = run(home, "run", str(flow), "--input", "[1]", timeout=RUN_TIMEOUT_SECONDS)
    assert one_sentence(refused).startswith("Error: Out of credits: workspace w needs 1.00")
    listing = run(home, "executions")
    assert "Incomplete runs" in listing.stdout and "n3" in listing.stdout
    (kept,) = json.loads(run(home, "executions", "incomplete", "--json").stdout)
    assert (kept["refused_node"], kept["status"], kept["trigger"]) == ("n3", "incomplete", "manual")

    engine.grant(ws, Decimal(5), kind="topup", key="stripe:cs_cli")
    before = engine.balance(ws).remaining
    resumed = run(home, "executions", "resume", kept["flow_run_id"], "--json",
                  timeout=RUN_TIMEOUT_SECONDS)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    started = json.loads(resumed.stdout)
    assert started["state"] == "Completed" and started["attempt"] == 1
    rows = read_usage(engine.sa_engine, flow_run_id=started["flow_run_id"])
    assert sorted(r.node_name for r in rows) == ["n3", "n4"]  # the rest came from results
    assert engine.balance(ws).remaining == before - 2  # n3 and n4, once each
    again = run(home, "executions", "resume", kept["flow_run_id"])
    assert one_sentence(again).startswith(f"Error: Run {kept['flow_run_id']} is resumed as ")
    assert engine.verify(ws) == 1
