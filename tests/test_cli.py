"""The ``spojit`` command as a person runs it: a real process, a SQLite file in SPOJIT_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spojit_engine import Engine

SPOJIT = str(Path(sys.executable).with_name("spojit"))


def run(home: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env["SPOJIT_HOME"] = str(home)
    if token:
        env["SPOJIT_TOKEN"] = token
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "spojit_home"


def test_init_usage_and_verify_on_a_fresh_home(home: Path) -> None:
    created = run(
        home, "init", "--workspace", "acme", "--plan", "starter", "--admin", "ana@acme.io", "--json"
    )
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["created"] and info["admin"]["token"].startswith("spj_")
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    engine.debit(
        info["workspace_id"],
        Decimal("12.5"),
        key="d1",
        workflow="leads",
        node_type="connector.agent",
    )

    card = json.loads(run(home, "usage", "--json", "--breakdown").stdout)
    assert (card["consumed"], card["remaining"], card["allowance_remaining"]) == (
        "12.500000",
        "987.500000",
        "987.500000",
    )
    assert card["resets_at"] > card["period_start"]
    assert (
        card["breakdown"][0]["workflow"] == "leads"
        and card["breakdown"][0]["credits"] == "12.500000"
    )

    human = run(home, "usage", "--breakdown")
    assert human.returncode == 0 and "Usage this period" in human.stdout and "12.50" in human.stdout
    assert "Allowance resets" in human.stdout and "leads" in human.stdout

    verified = run(home, "ledger", "verify", "--json")
    assert json.loads(verified.stdout) == {"ok": True, "workspaces_verified": 1}

    again = run(home, "init", "--workspace", "acme")
    assert again.returncode == 0 and "already exists; nothing changed" in again.stdout


def test_errors_are_one_sentence_non_zero_and_no_traceback(home: Path) -> None:
    assert run(home, "init").returncode == 0
    for args in (
        ("usage", "--workspace", "nope"),
        ("member", "add", "not-an-email"),
        ("member", "add", "bob@acme.io", "--role", "owner"),
        ("init", "--workspace", "x y"),
        ("init", "--workspace", "other", "--plan", "gold"),
        ("usage", "--breakdown", "--by", "colour"),
    ):
        result = run(home, *args)
        assert result.returncode == 1, args
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), (
            result.stderr
        )


def test_a_member_token_sees_only_its_own_usage_and_cannot_add_members(home: Path) -> None:
    info = json.loads(run(home, "init", "--json").stdout)
    member = json.loads(run(home, "member", "add", "bob@example.com", "--json").stdout)
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    ws = info["workspace_id"]
    engine.debit(ws, Decimal("3"), key="a", workflow="w", member_id=info["admin"]["id"])
    engine.debit(ws, Decimal("2"), key="b", workflow="w", member_id=member["id"])

    as_bob = json.loads(run(home, "usage", "--json", "--breakdown", token=member["token"]).stdout)
    assert [row["credits"] for row in as_bob["breakdown"]] == ["2.000000"]
    as_admin = json.loads(
        run(home, "usage", "--json", "--breakdown", token=info["admin"]["token"]).stdout
    )
    assert [row["credits"] for row in as_admin["breakdown"]] == ["5.000000"]

    refused = run(home, "member", "add", "eve@example.com", token=member["token"])
    assert refused.returncode == 1
    assert "Only a workspace admin may add members; bob@example.com is a member." in refused.stderr
    bad = run(home, "usage", token="spj_not-a-token")
    assert bad.returncode == 1 and "not a member token" in bad.stderr


def test_init_after_the_demo_reuses_its_workspace_and_member_add_just_works(home: Path) -> None:
    """`spojit demo` made a workspace; a plain `spojit init` reports it, creates nothing, and
    `member add` acts on it without asking which workspace."""
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    demo = engine.create_workspace("demo", plan="starter")
    engine.add_member(demo.id, "demo-admin@example.com", role="admin")
    for _ in range(2):  # idempotent
        again = run(home, "init")
        assert again.returncode == 0, again.stderr
        assert "Workspace demo" in again.stdout and "nothing changed" in again.stdout
        assert "demo-admin@example.com" in again.stdout
    assert [w.name for w in engine.workspaces()] == ["demo"]
    added = run(home, "member", "add", "bob@example.com", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["workspace_id"] == demo.id
    made = json.loads(run(home, "init", "--workspace", "acme", "--json").stdout)
    assert made["created"], made
    beside = json.loads(run(home, "member", "add", "carl@example.com", "--json").stdout)
    assert beside["workspace_id"] == made["workspace_id"]  # the new one is the default now
    assert run(home, "workspace", "use", "demo").returncode == 0
    assert json.loads(run(home, "init", "--workspace", "beta", "--json").stdout)["created"]
    chosen = json.loads(run(home, "member", "add", "dora@example.com", "--json").stdout)
    assert chosen["workspace_id"] == demo.id  # a default a person chose stays


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("credits", "grant", "-5", "--reason", "x"), "No such option: -5"),
        (("estimate", "lead_enrichment", "--items", "abc"), "Invalid value for '--items'"),
        (("usage", "--days"), "Option '--days' requires an argument"),
        (("nosuch",), "No such command 'nosuch'"),
    ],
)
def test_what_click_refuses_is_one_sentence(home: Path, args: tuple[str, ...], said: str) -> None:
    result = run(home, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {said}") and lines[0].endswith("."), lines
    assert not any(box in result.stderr for box in "╭│╰")
