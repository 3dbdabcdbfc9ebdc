"""``spojit member list|remove|rotate`` as a person runs them: real processes on SQLite and
PostgreSQL. A removed or rotated ``SPOJIT_TOKEN`` is refused by the very next command, with one
sentence and a non-zero exit; refusals change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spojit_engine import Engine

SPOJIT = str(Path(sys.executable).with_name("spojit"))
Spojit = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def spojit(database_url: str, tmp_path: Path) -> Spojit:
    """Run ``spojit ARGS`` on the test's database, as the operator or the member ``token``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(tmp_path / "home"), "SPOJIT_DATABASE_URL": database_url}

    def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"SPOJIT_TOKEN": token} if token else {}
        return subprocess.run([SPOJIT, *args], capture_output=True, text=True,
                              env=env | extra, timeout=120)  # fmt: skip

    return run


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode != 0 and words in done.stderr, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_list_remove_and_rotate_and_the_old_tokens_are_refused(
    spojit: Spojit, engine: Engine
) -> None:
    ws = engine.create_workspace("acme", plan="starter").id
    ana = engine.add_member(ws, "ana@acme.io", role="admin")
    bob = engine.add_member(ws, "bob@acme.io")
    cy = engine.add_member(ws, "cy@acme.io")

    listed = json.loads(_ok(spojit("member", "list", "--json", token=ana.token)))
    assert [(m["email"], m["role"]) for m in listed] == [
        ("ana@acme.io", "admin"), ("bob@acme.io", "member"), ("cy@acme.io", "member"),
    ]  # fmt: skip
    table = _ok(spojit("member", "list", "--workspace", "acme"))
    assert "bob@acme.io" in table and "admin" in table
    _refused(spojit("member", "list", token=bob.token), "admin")

    # A member rotates their own token: the old one is refused by the next command.
    rotated = json.loads(_ok(spojit("member", "rotate", "--json", token=bob.token)))
    assert rotated["id"] == bob.id and rotated["token"].startswith("spj_")
    _refused(spojit("usage", "--json", token=bob.token), "not a member token")
    _ok(spojit("usage", "--json", token=rotated["token"]))
    _refused(spojit("member", "rotate", "cy@acme.io", token=rotated["token"]), "admin")
    _ok(spojit("usage", "--json", token=cy.token))

    # An admin removes a member: their token is refused; twice is one sentence, exit 1.
    human = _ok(spojit("member", "remove", "cy@acme.io", token=ana.token))
    assert "Removed cy@acme.io" in human
    _refused(spojit("usage", "--json", token=cy.token), "not a member token")
    _refused(spojit("member", "remove", "cy@acme.io", token=ana.token), "already removed")
    _refused(spojit("member", "remove", "nobody@acme.io", token=ana.token), "Unknown member")
    _refused(spojit("member", "rotate", "cy@acme.io", token=ana.token), "was removed")
    _refused(spojit("member", "rotate", "--workspace", "acme"), "Name the member")
    _refused(spojit("member", "remove", "ana@acme.io", "--workspace", "acme"), "last admin")
    everyone = json.loads(_ok(spojit("member", "list", "--removed", "--json", token=ana.token)))
    assert [m["email"] for m in everyone if m["removed_at"]] == ["cy@acme.io"]
    assert [m.email for m in engine.members(ws)] == ["ana@acme.io", "bob@acme.io"]

    # The operator (no token) rotates an admin's token.
    new_ana = json.loads(_ok(spojit("member", "rotate", ana.id, "--workspace", "acme", "--json")))
    _refused(spojit("member", "list", token=ana.token), "not a member token")
    _ok(spojit("member", "list", token=new_ana["token"]))
