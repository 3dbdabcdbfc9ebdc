"""What ``spojit`` prints reads right at any width: user text literally (a reason ``[/x]`` is no
Rich markup), numbers whole at 80 columns and narrower (names wrap instead), credits grouped by
thousands, commands on one line however narrow the terminal, a date-only expiry read and shown
by one rule."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from test_cli import run

from spojit_engine import Engine
from spojit_engine.cli import render
from spojit_engine.display import credits_column, credits_count, credits_text, expiry_text
from spojit_engine.results import Execution

LONG_WORKFLOW = "a-very-long-workflow-name-for-the-finance-team-eu-west"
MARKUP_REASON = "[/x] spring [bold]promo[/bold]"


def narrow(home: Path, columns: int, *args: str) -> str:
    """A command's output as a terminal ``columns`` wide shows it (Rich reads COLUMNS)."""
    os.environ["COLUMNS"] = str(columns)
    try:
        done = run(home, *args)
    finally:
        del os.environ["COLUMNS"]
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture
def busy_home(tmp_path: Path) -> Path:
    """A workspace with a big grant whose reason looks like markup, and a big long-named run."""
    home = tmp_path / "home"
    assert run(home, "init", "--workspace", "acme", "--plan", "starter").returncode == 0
    granted = run(home, "credits", "grant", "50000", "--reason", MARKUP_REASON)
    assert granted.returncode == 0, granted.stderr
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    ws = engine.workspace_id("acme")
    engine.debit(ws, Decimal("1007.123456"), key="d1", workflow=LONG_WORKFLOW,
                 node_type="connector.agent")  # fmt: skip
    engine.debit(ws, Decimal("0.5"), key="d2", workflow="w", node_type="transform.map")
    engine.close()
    return home


def test_user_text_prints_literally(busy_home: Path) -> None:
    shown = narrow(busy_home, 200, "credits", "list")
    assert MARKUP_REASON in shown  # neither a MarkupError nor eaten as style
    assert "Added 50,000.00 credits (promo)" in run(busy_home, "credits", "grant", "50,000",
                                                    "--reason", "[/]").stdout  # fmt: skip


@pytest.mark.parametrize("columns", [80, 60])
def test_numbers_are_never_cut_names_wrap(busy_home: Path, columns: int) -> None:
    card = narrow(busy_home, columns, "usage", "--breakdown")
    blocks = narrow(busy_home, columns, "credits", "list")
    for shown in (card, blocks):
        assert "…" not in shown
        assert max(len(line) for line in shown.splitlines()) <= columns
    for number in ("1,007.123456", "1,007.623456", "49,992.376544"):
        assert number in card, card
    assert "50,000.00" in blocks and "48,992.376544" in blocks, blocks
    cells = "".join(line.split()[0] for line in card.split("Breakdown this period")[1].splitlines()
                    if line.strip() and not line.strip().startswith(("─", "workflow")))  # fmt: skip
    assert LONG_WORKFLOW in cells  # wrapped over lines, every character still there


@pytest.mark.parametrize("columns", [80, 60])
def test_the_executions_table_keeps_numbers_whole(columns: int) -> None:
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    runs = [
        Execution("run-1", LONG_WORKFLOW, at, at, "out of credits", False, None, 1234,
                  Decimal("1007.123456"), "crimson-otter", "schedule"),
        Execution("run-2", "[/x]", at, at, "ok", True, None, 3, Decimal("0.5"), None, "manual"),
    ]  # fmt: skip
    console = Console(width=columns, record=True)
    console.print(render.executions_table(runs, {}))
    text = console.export_text()
    assert "1,007.123456" in text and "0.500000" in text and "1234" in text, text
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns
    assert "[/x]" in text if columns == 80 else "[/" in text  # a name may wrap, literally


def test_credits_read_with_thousands_and_packs_as_counts() -> None:
    assert credits_text(Decimal("1047.69647")) == "1,047.69647"
    assert credits_text(Decimal("50000")) == "50,000.00"
    assert credits_column([Decimal("50000"), Decimal("0.000001")]) == [
        "50,000.000000",
        "0.000001",
    ]
    assert [credits_count(Decimal(a)) for a in ("500", "2500", "12.5")] == ["500", "2,500", "12.5"]


def test_an_amount_typed_as_printed_is_read() -> None:
    from spojit_engine.cli.options import credits_input

    assert [credits_input(t) for t in ("1,000", "12,345.5", " 50 ", "1,00", "1,000,5")] == [
        "1000", "12345.5", " 50 ", "1,00", "1,000,5",
    ]  # fmt: skip


def test_the_catalog_shows_packs_as_counts(tmp_path: Path) -> None:
    shown = narrow(tmp_path / "home", 120, "plan", "list")
    assert "2,500 " in shown and "2500.00" not in shown and "2,500.00" not in shown, shown


def test_the_estimate_columns_share_their_places(tmp_path: Path) -> None:
    shown = narrow(tmp_path / "home", 80, "estimate", "lead_enrichment")
    for word in ("each", "enrich", "score", "leads", "report"):
        assert word in shown.split(), shown  # at 80 columns the names keep room: words whole
    rows = [line.split() for line in shown.splitlines() if line.strip()[-1:].isdigit()]
    assert len(rows) >= 3, shown
    for column in (-3, -2, -1):  # credits typical, p95, max: the nodes and their total
        assert len({len(row[column].split(".")[1]) for row in rows}) == 1, shown


def test_a_date_only_expiry_reads_and_shows_as_that_day(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "init").returncode == 0
    granted = run(home, "credits", "grant", "5", "--reason", "x", "--expires", "2027-03-01")
    assert "(promo, through 2027-03-01)" in granted.stdout, granted.stdout
    listed = narrow(home, 200, "credits", "list")
    assert "through 2027-03-01" in listed and "2027-03-02" not in listed, listed
    as_json = json.loads(run(home, "credits", "list", "--json").stdout)
    assert any(g["expires_at"].startswith("2027-03-02T00:00:00") for g in as_json)
    assert expiry_text(datetime(2027, 3, 2, 10, 30, tzinfo=UTC)) == "2027-03-02 10:30 UTC"
    assert expiry_text(None) == "never"


def test_deploy_prints_the_worker_command_on_one_line(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spojit_engine.cli.commands import deploy
    from spojit_engine.cli.context import CommandContext
    from spojit_engine.guards.deployments.deploy import Deployed

    ws = sqlite_engine.create_workspace("acme")
    console = Console(width=40, record=True)
    monkeypatch.setattr(render, "console", console)
    monkeypatch.setattr(deploy, "console", console)
    deployed = Deployed("dep-1", "nightly", "nightly_digest", ws.id, "0 6 * * *", "spojit",
                        "/hooks/nightly", "whsec_" + "x" * 40, "dep-2")  # fmt: skip
    deploy.print_deployed(CommandContext(sqlite_engine, None, ws.id), deployed, None)
    lines = console.export_text().splitlines()
    command = deploy.worker_command(sqlite_engine.settings, "spojit")
    assert f"  {command}" in lines, lines  # whole, on its own line: a copy-paste runs
    assert len(command) > 40
    assert "whsec_" + "x" * 40 in lines
