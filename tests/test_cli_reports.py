"""The credits display rule, totals, the timeline and the default workspace, as a person meets
them: the rule's properties, then real ``spojit`` processes on a SQLite file in SPOJIT_HOME."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spojit_engine import Engine
from spojit_engine.display import credits_column, credits_exact, credits_text

SPOJIT = str(Path(sys.executable).with_name("spojit"))
amounts = st.integers(-(10**15), 10**15).map(lambda ucr: Decimal(ucr) / 10**6)


@given(amount=amounts)
def test_a_credit_amount_reads_exactly(amount: Decimal) -> None:
    text = credits_text(amount)
    assert Decimal(text.replace(",", "")) == amount  # never rounded, thousands grouped
    assert all(len(group) == 3 for group in text.split(".")[0].lstrip("-").split(",")[1:])
    places = len(text.split(".")[1])
    assert 2 <= places <= 6
    assert places == 2 or not text.endswith("0")  # more places only when the amount has them
    assert (
        Decimal(credits_exact(amount)) == amount and len(credits_exact(amount).split(".")[1]) == 6
    )


@given(column=st.lists(amounts, min_size=1, max_size=8))
def test_amounts_side_by_side_share_their_places(column: list[Decimal]) -> None:
    texts = credits_column(column)
    assert [Decimal(t.replace(",", "")) for t in texts] == column
    assert len({len(t.split(".")[1]) for t in texts}) == 1
    assert credits_column([Decimal("5.897728"), Decimal(0)]) == ["5.897728", "0.000000"]


def run(home: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOJIT_", "PREFECT_")) and not k.endswith("_API_KEY")
    }
    clean.update(SPOJIT_HOME=str(home), COLUMNS="160", **(env or {}))
    return subprocess.run(
        [SPOJIT, *args], capture_output=True, text=True, env=clean, timeout=timeout
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "spojit_home"


def test_the_default_workspace_is_named_remembered_or_the_only_one(home: Path) -> None:
    assert run(home, "init", "--workspace", "acme").returncode == 0
    assert json.loads(run(home, "usage", "--json").stdout)["workspace"] == "acme"  # the only one
    Engine(f"sqlite:///{home / 'spojit.db'}").create_workspace("beta")  # no default chosen
    several = run(home, "usage")
    assert several.returncode == 1 and "Traceback" not in several.stderr
    assert "spojit workspace use NAME" in several.stderr

    assert run(home, "workspace", "use", "beta").returncode == 0
    assert json.loads(run(home, "usage", "--json").stdout)["workspace"] == "beta"
    named = run(home, "usage", "--json", env={"SPOJIT_WORKSPACE": "acme"})
    assert json.loads(named.stdout)["workspace"] == "acme"  # the environment wins
    listed = json.loads(run(home, "workspace", "list", "--json").stdout)
    assert [(w["name"], w["default"]) for w in listed] == [("acme", False), ("beta", True)]
    unknown = run(home, "workspace", "use", "nope")
    assert unknown.returncode == 1 and "Unknown workspace" in unknown.stderr
    assert json.loads(run(home, "usage", "--json").stdout)["workspace"] == "beta"  # unchanged


def test_breakdown_and_timeline_totals_equal_consumed(home: Path) -> None:
    info = json.loads(
        run(home, "init", "--workspace", "acme", "--plan", "starter", "--json").stdout
    )
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    for key, amount, workflow in (
        ("a", "5.897728", "leads"),
        ("b", "2", "digest"),
        ("c", "1", "leads"),
    ):
        engine.debit(
            info["workspace_id"], Decimal(amount), key=key, workflow=workflow, node_type="knowledge"
        )
    card = json.loads(run(home, "usage", "--breakdown", "--timeline", "--json").stdout)
    assert card["consumed"] == "8.897728"
    assert card["breakdown_total"] == {"credits": "8.897728", "calls": 3}
    assert sum(Decimal(d["credits"]) for d in card["timeline"]) == Decimal(card["consumed"])
    today = card["timeline"][-1]
    assert (today["workflow"], today["workflow_credits"], today["calls"]) == (
        "leads",
        "6.897728",
        3,
    )

    shown = run(home, "usage", "--breakdown", "--timeline", "--days", "3").stdout
    assert "Total" in shown.split("Breakdown this period", 1)[1]
    assert "0.00 " not in shown and "0.000000" in shown  # one column, one number of places
    assert "8.897728" in shown.split("Usage day by day", 1)[1]
    bad = run(home, "usage", "--timeline", "--days", "0")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: days must be")


def spojit_command_here() -> str:
    """How a hint starts when ``SPOJIT`` runs here: ``spojit`` if that is the one on PATH."""
    on_path = shutil.which("spojit")
    if on_path is not None and Path(on_path).absolute() == Path(SPOJIT).absolute():
        return "spojit"
    return os.path.relpath(SPOJIT) if Path(SPOJIT).is_relative_to(Path.cwd()) else SPOJIT


def test_hints_start_with_the_spojit_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the README's first command nothing is activated: ``spojit`` is not on PATH, so a
    hint names the script that runs (``.venv/bin/spojit``), relative to here."""
    from spojit_engine.cli.default_workspace import spojit_command

    script = tmp_path / ".venv" / "bin" / "spojit"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert spojit_command() == ".venv/bin/spojit"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin")
    assert spojit_command() == "spojit"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert spojit_command() == str(script)


@pytest.mark.slow
def test_the_demo_hints_run_as_printed_beside_another_workspace(
    home: Path, prefect_api_url: str
) -> None:
    server = {"PREFECT_API_URL": prefect_api_url}  # the fresh-home demo is test_cli_run's
    assert run(home, "init", "--workspace", "other").returncode == 0
    demo = run(home, "demo", env=server, timeout=900)
    assert demo.returncode == 0, demo.stderr
    hints = demo.stdout.split("Next:", 1)[1].strip().splitlines()
    commands = [line.strip().split("  ")[0] for line in hints if line.strip()]
    assert len(commands) == 3 and all("--workspace demo" in c for c in commands), commands
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == spojit_command_here(), argv  # started as this spojit was
        done = run(home, *argv[1:], env=server, timeout=900)
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
