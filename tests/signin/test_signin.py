"""One-time sign-in links on SQLite and PostgreSQL: two browsers opening one link at the same
instant start one session; and ``spojit login-link`` as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from spojit_engine import Engine
from spojit_engine.errors import InvalidInput, SignInRefused, UnknownMember
from spojit_engine.results import BrowserSession

SPOJIT = str(Path(sys.executable).with_name("spojit"))


def test_one_link_opened_twice_at_once_starts_one_session(engine: Engine) -> None:
    ws = engine.create_workspace("acme")
    engine.add_member(ws.id, "ana@acme.io", role="admin")
    token = engine.login_link(ws.id).url.rsplit("/", 1)[1]
    start = threading.Barrier(4)
    won: list[BrowserSession] = []
    lost: list[SignInRefused] = []

    def open_link() -> None:
        start.wait()
        try:
            won.append(engine.redeem_login_link(token))
        except SignInRefused as exc:
            lost.append(exc)

    threads = [threading.Thread(target=open_link) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 3
    assert all("already used" in str(e) for e in lost)
    assert engine.session_member(won[0].token).member.email == "ana@acme.io"
    assert engine.end_session(won[0].token) and not engine.end_session(won[0].token)
    with pytest.raises(SignInRefused):
        engine.session_member(won[0].token)


def test_links_name_a_member_of_this_workspace_and_live_a_bounded_time(engine: Engine) -> None:
    acme, beta = engine.create_workspace("acme"), engine.create_workspace("beta")
    engine.add_member(beta.id, "bo@beta.io", role="admin")
    with pytest.raises(InvalidInput, match="no admin"):
        engine.login_link(acme.id)
    with pytest.raises(UnknownMember):
        engine.login_link(acme.id, member_id="bo@beta.io")  # another workspace's member
    limit = engine.settings.login_link_ttl_minutes_max
    with pytest.raises(InvalidInput, match=f"1-{limit} minutes"):
        engine.login_link(beta.id, ttl=timedelta(minutes=limit + 1))


def run(home: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(home), "SPOJIT_PUBLIC_URL": "https://spojit.example/"}
    if token:
        env["SPOJIT_TOKEN"] = token
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, env=env, timeout=120)


def test_spojit_login_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    ws = engine.create_workspace("acme")
    engine.add_member(ws.id, "ana@acme.io", role="admin")
    bob = engine.add_member(ws.id, "bob@acme.io")
    engine.close()

    made = run(home, "login-link", "--ttl", "30", "--json")
    assert made.returncode == 0, made.stderr
    link = json.loads(made.stdout)
    assert (
        link["url"].startswith("https://spojit.example/login/") and link["member"] == "ana@acme.io"
    )
    refused = run(home, "login-link", "--member", "ana@acme.io", token=bob.token)
    assert refused.returncode == 1 and "Only a workspace admin" in refused.stderr
    bad = run(home, "login-link", "--ttl", "0")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: A login link lives 1-")
    assert "Traceback" not in refused.stderr + bad.stderr
