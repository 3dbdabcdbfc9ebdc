"""``spojit notify`` as a person runs it: real processes, a SQLite file, the local receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SPOJIT = str(Path(sys.executable).with_name("spojit"))
ALLOW_PRIVATE = "SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS"


def run(
    home: Path, *args: str, token: str | None = None, allow_private: bool = True
) -> subprocess.CompletedProcess[str]:
    """``spojit *args`` in ``home``; ``allow_private``: the receiver on loopback is allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    env.update(SPOJIT_HOME=str(home), COLUMNS="160", **({"SPOJIT_TOKEN": token} if token else {}))
    env[ALLOW_PRIVATE] = "true" if allow_private else "false"
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, env=env, timeout=120)


def test_add_list_test_and_remove_a_notification(tmp_path: Path, receiver: Any) -> None:
    home = tmp_path / "home"
    assert run(home, "init", "--workspace", "acme").returncode == 0
    added = run(home, "notify", "add", "--webhook", receiver.url, "--json")
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)
    ran_leads(home)
    regression = run(home, "notify", "add", "--workflow", "leads", "--regression", "2",
                     "--runs", "5", "--webhook", receiver.url)  # fmt: skip
    assert regression.returncode == 0 and "2 x the median of its last 5" in regression.stdout

    tested = run(home, "notify", "test", rule["id"])
    assert tested.returncode == 0, tested.stderr
    assert receiver.events() == ["test"] and receiver.bodies[0]["workspace"] == "acme"
    listed = json.loads(run(home, "notify", "list", "--json").stdout)
    assert [r["kind"] for r in listed["rules"]] == ["thresholds", "regression"]
    assert [(s["event"], s["state"]) for s in listed["recent"]] == [("test", "sent")]

    assert run(home, "notify", "remove", rule["id"]).returncode == 0
    gone = run(home, "notify", "remove", rule["id"])
    assert gone.returncode == 1 and gone.stderr.startswith("Error: No notification rule")


def ran_leads(home: Path) -> None:
    """The workspace has run the workflow ``leads`` (a rule may only name one it runs)."""
    from spojit_engine import Engine

    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    ws = engine.workspace_id("acme")
    engine.debit(ws, "1", key="leads-run", workflow="leads", node_type="transform.map")
    engine.close()


def test_bad_notifications_fail_in_one_sentence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "init", "--workspace", "acme").returncode == 0
    member = json.loads(run(home, "member", "add", "bob@acme.io", "--json").stdout)
    for args, token in (
        (["notify", "add"], None),  # no target
        (["notify", "add", "--webhook", "not-a-url"], None),
        (["notify", "add", "--above", "5", "--webhook", "http://x.io"], None),
        (["notify", "add", "--workflow", "leads", "--webhook", "http://x.io"], None),
        (["notify", "add", "--webhook", "http://x.io"], member["token"]),  # not an admin
    ):
        bad = run(home, *args, token=token)
        assert bad.returncode == 1, args
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (args, bad.stderr)
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/"):
        ssrf = run(home, "notify", "add", "--webhook", url, allow_private=False)
        assert ssrf.returncode == 1 and ssrf.stderr.count("\n") == 1, ssrf.stderr
        assert "SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS=true" in ssrf.stderr
    unknown = run(home, "notify", "add", "--workflow", "no_such_wf", "--above", "5",
                  "--webhook", "https://93.184.215.14/x")  # fmt: skip
    assert unknown.returncode == 1 and "not run or deployed" in unknown.stderr
    assert json.loads(run(home, "notify", "list", "--json").stdout)["rules"] == []
