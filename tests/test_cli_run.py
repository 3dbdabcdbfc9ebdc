"""``spojit demo``, ``spojit run`` and ``spojit executions`` as a person runs them: real processes,
a fresh SPOJIT_HOME (and Prefect's home inside it), Prefect's local server, the mock LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spojit_engine import Engine
from spojit_engine.metering.store.usage import UsageRow, read_usage, record_usage

SPOJIT = str(Path(sys.executable).with_name("spojit"))
EXAMPLES = ("lead_enrichment", "support_triage", "nightly_digest")
RUN_TIMEOUT_SECONDS = 900  # Prefect's first start on a fresh home is slow on a busy machine


def run(
    home: Path,
    *args: str,
    token: str | None = None,
    timeout: float = 120,
    prefect_api_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``spojit ARGS`` with only SPOJIT_HOME set (and the Prefect server, when given): no other
    Prefect settings, no provider keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOJIT_", "PREFECT_")) and not k.endswith("_API_KEY")
    }
    env["SPOJIT_HOME"] = str(home)
    env["COLUMNS"] = "120"
    if token:
        env["SPOJIT_TOKEN"] = token
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, env=env, timeout=timeout)


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one line on stderr and no traceback anywhere."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), lines
    return lines[0]


def ledger(home: Path) -> Engine:
    return Engine(f"sqlite:///{home / 'spojit.db'}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "spojit_home"


@pytest.mark.slow
def test_demo_runs_the_examples_and_the_card_adds_up(home: Path) -> None:
    demo = run(home, "demo", timeout=RUN_TIMEOUT_SECONDS)
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    assert (home / "prefect").is_dir()  # Prefect's home went under SPOJIT_HOME, not ~/.prefect
    for i, name in enumerate(EXAMPLES, start=1):
        assert f"{i}/3 {name}" in demo.stdout
    assert "Usage this period — demo" in demo.stdout
    breakdown = demo.stdout.split("Breakdown this period", 1)[1]
    for name in EXAMPLES:
        assert name in breakdown
    assert "page on-call" in demo.stdout and "leads enriched" in demo.stdout

    verified = run(home, "ledger", "verify", "--json")
    assert json.loads(verified.stdout) == {"ok": True, "workspaces_verified": 1}

    # The card's consumed is exactly what the runs' node calls cost.
    card = json.loads(run(home, "usage", "--json").stdout)
    engine = ledger(home)
    records = read_usage(engine.sa_engine, workspace_id=card["workspace_id"])
    assert {r.workflow for r in records} == set(EXAMPLES)
    assert Decimal(card["consumed"]) == Decimal(sum(r.credits_ucr for r in records)) / 10**6
    assert Decimal(card["consumed"]) > 0 and Decimal(card["held"]) == 0

    runs = json.loads(run(home, "executions", "--json").stdout)
    assert [r["workflow"] for r in runs] == list(reversed(EXAMPLES))  # newest first
    assert [r["test_run"] for r in runs] == [False, True, False]
    assert {r["status"] for r in runs} == {"ok"}
    assert sum(Decimal(r["credits"]) for r in runs) == Decimal(card["consumed"])

    # A member's own run: billed to them, listed for them; the admin sees every run.
    bob = json.loads(run(home, "member", "add", "bob@example.com", "--json").stdout)
    mine = run(home, "run", "nightly_digest", "--test", "--json", token=bob["token"],
               timeout=RUN_TIMEOUT_SECONDS)  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    report = json.loads(mine.stdout)
    assert report["workflow"] == "nightly_digest" and report["state"] == "Completed"
    assert report["test_run"] is True and report["member_id"] == bob["id"]
    assert report["result"]["digest"].startswith("Digest for ")
    assert Decimal(report["credits"]) == sum(Decimal(n["credits"]) for n in report["nodes"])
    assert [n["node"] for n in report["nodes"]] == [
        "every morning", "fetch events", "count events", "digest",
    ]  # fmt: skip

    as_bob = json.loads(run(home, "executions", "--json", token=bob["token"]).stdout)
    assert [(r["flow_run_id"], r["member"]) for r in as_bob] == [
        (report["flow_run_id"], "bob@example.com")
    ]
    assert as_bob[0]["credits"] == report["credits"]
    everyone = json.loads(run(home, "executions", "--json").stdout)
    assert len(everyone) == 4 and everyone[0]["flow_run_id"] == report["flow_run_id"]

    again = run(home, "usage", "--json")
    consumed = Decimal(json.loads(again.stdout)["consumed"])
    assert consumed == Decimal(card["consumed"]) + Decimal(report["credits"])


@pytest.mark.slow
def test_an_out_of_credits_run_is_one_sentence(home: Path, prefect_api_url: str) -> None:
    info = json.loads(run(home, "init", "--workspace", "broke", "--plan", "free", "--json").stdout)
    engine = ledger(home)
    engine.debit(info["workspace_id"], engine.balance(info["workspace_id"]).remaining, key="drain")

    # The first run is refused by the ledger at its first node; that stops the workspace, so the
    # next is refused at its start by the credit guard. Either way: one sentence, exit 1.
    for _ in range(2):
        refused = run(home, "run", "nightly_digest", timeout=RUN_TIMEOUT_SECONDS,
                      prefect_api_url=prefect_api_url)  # fmt: skip
        line = one_sentence(refused)
        assert line.startswith("Error: Out of credits: workspace broke"), line
    records = read_usage(engine.sa_engine, workspace_id=info["workspace_id"])
    assert records and all((r.status, r.credits_ucr) == ("refused", 0) for r in records)
    runs = json.loads(run(home, "executions", "--json").stdout)
    # The first was stopped at a node, so it is kept to resume; the second never started.
    assert [(r["workflow"], r["status"], r["credits"]) for r in runs] == [
        ("nightly_digest", "out of credits", "0.000000"),
        ("nightly_digest", "incomplete", "0.000000"),
    ]
    assert engine.balance(info["workspace_id"]).consumed == Decimal(100)


# What CI once printed above a refused run's one sentence: LiteLLM imports requests on the CLI's
# background thread while the main thread is inside `catch_warnings()`, which drops requests' own
# filter on exit; urllib3 then warns that SOCKS needs PySocks. The race, made deterministic:
_SOCKS_RACE = """
import warnings
import spojit_engine.cli.app
with warnings.catch_warnings():
    import requests
try:
    import urllib3.contrib.socks
except ImportError:
    pass
"""


def test_a_library_import_raced_with_catch_warnings_prints_nothing() -> None:
    raced = subprocess.run([sys.executable, "-c", _SOCKS_RACE], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert (raced.returncode, raced.stderr) == (0, "")


def test_bad_flows_and_inputs_fail_in_one_sentence_before_prefect_starts(
    home: Path, tmp_path: Path
) -> None:
    assert run(home, "init").returncode == 0
    not_a_workflow = tmp_path / "plain.py"
    not_a_workflow.write_text("workflow = 42\n")
    broken = tmp_path / "broken.py"
    broken.write_text("raise ValueError('no such table')\n")
    expected = {
        ("run", "nope"): "Error: Unknown flow 'nope'; name an example (lead_enrichment, "
        "support_triage, nightly_digest), a .py file, or module:attr.",
        ("run", "missing.py"): "Error: There is no workflow file missing.py.",
        ("run", str(not_a_workflow)): f"Error: {not_a_workflow} has no Workflow named 'workflow'.",
        ("run", f"{broken}"): f"Error: Loading {broken} failed: ValueError: no such table.",
        ("run", "no_such_module:workflow"): (
            "Error: There is no module 'no_such_module' to load a workflow from."
        ),
        ("run", "json:dumps"): "Error: json:dumps has no Workflow named 'dumps'.",
        ("run", "nightly_digest", "--input", "{"): (
            "Error: --input is not JSON: Expecting property name enclosed in double quotes "
            "at character 1."
        ),
        ("run", "nightly_digest", "--workspace", "nope"): "Error: Unknown workspace 'nope'.",
        ("executions", "--limit", "0"): "Error: limit must be 1-500, not 0.",
    }
    for args, message in expected.items():
        assert one_sentence(run(home, *args)) == message, args
    assert not (home / "prefect").exists()  # none of them got as far as starting Prefect


def _record(workspace_id: str, run_id: str, node: str, *, member_id: str | None, credits_ucr: int,
            status: str = "ok", test_run: bool = False, at: datetime) -> UsageRow:  # fmt: skip
    return UsageRow(
        key=f"node:{run_id}:{node}", workspace_id=workspace_id, workflow=f"wf-{run_id}",
        flow_run_id=run_id, task_run_id=f"task-{run_id}-{node}", attempt=1, node_name=node,
        node_type="connector", mode="direct", models=None, tokens_in=0, tokens_out=0,
        tokens_cached=0, llm_calls=0, credits_ucr=credits_ucr, member_id=member_id,
        test_run=test_run, status=status, error=None, created_at=at,
    )  # fmt: skip


def test_executions_group_records_by_run_and_a_member_sees_only_their_own(home: Path) -> None:
    info = json.loads(run(home, "init", "--json").stdout)
    bob = json.loads(run(home, "member", "add", "bob@example.com", "--json").stdout)
    ws, admin = info["workspace_id"], info["admin"]["id"]
    engine = ledger(home)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {"run_id": "run-a", "node": "fetch", "member_id": admin, "credits_ucr": 1_000_000},
        {"run_id": "run-a", "node": "shape", "member_id": admin, "credits_ucr": 100_000},
        {"run_id": "run-b", "node": "fetch", "member_id": bob["id"], "credits_ucr": 1_000_000,
         "test_run": True},
        {"run_id": "run-b", "node": "agent", "member_id": bob["id"], "credits_ucr": 0,
         "status": "refused"},
    ]  # fmt: skip
    for i, row in enumerate(rows):
        record_usage(engine.sa_engine, _record(ws, at=now + timedelta(seconds=i), **row))

    everyone = json.loads(run(home, "executions", "--json").stdout)
    assert [
        (r["flow_run_id"], r["status"], r["test_run"], r["node_calls"], r["credits"], r["member"])
        for r in everyone
    ] == [
        ("run-b", "out of credits", True, 2, "1.000000", "bob@example.com"),
        ("run-a", "ok", False, 2, "1.100000", "admin@example.com"),
    ]
    as_bob = json.loads(run(home, "executions", "--json", token=bob["token"]).stdout)
    assert [r["flow_run_id"] for r in as_bob] == ["run-b"]
    assert len(json.loads(run(home, "executions", "--json", "--limit", "1").stdout)) == 1

    table = run(home, "executions", token=info["admin"]["token"])
    assert table.returncode == 0 and "Executions" in table.stdout
    assert "out of credits" in table.stdout and "bob@example.com" in table.stdout
