"""``spojit deploy`` and ``spojit deployments`` against the session's Prefect server (in process,
through Typer's runner), and without any Prefect API (a real process: one sentence)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from guard_helpers import prefect, unique
from typer.testing import CliRunner

from spojit_engine import Engine
from spojit_engine.cli.app import app
from spojit_engine.guards.deployments.deploy import RENEWALS_NAME
from spojit_engine.guards.policy import Cause
from spojit_engine.settings import get_settings

FLOWS = Path(__file__).with_name("flows.py")
SPOJIT = str(Path(sys.executable).with_name("spojit"))


@pytest.fixture
def cli(bound: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """``spojit`` on the same ledger as ``bound``, as its local operator."""
    monkeypatch.setenv("SPOJIT_DATABASE_URL", bound.database_url)
    monkeypatch.delenv("SPOJIT_TOKEN", raising=False)
    monkeypatch.delenv("SPOJIT_WORKSPACE", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def spojit(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_deploy_binds_schedules_and_hooks_and_deployments_shows_who_paused(
    cli: CliRunner, bound: Engine
) -> None:
    ws = bound.create_workspace(unique("ops"), plan="free")
    name = unique("ticks")
    out = json.loads(
        spojit(
            cli,
            "deploy",
            str(FLOWS),
            "--name",
            name,
            "--interval",
            "30",
            "--webhook",
            "--max-credits-per-day",
            "5",
            "-w",
            ws.name,
            "--json",
        )
    )
    assert out["workflow"] == "guard_tick" and out["schedule"] == "every 30s"
    assert out["webhook_url"] == f"http://127.0.0.1:8000/hooks/{name}"
    assert out["webhook_secret"].startswith("whk_") and out["max_credits_per_day"] == "5.000000"
    with prefect() as client:
        deployment = client.read_deployment(out["deployment_id"])
        assert deployment.entrypoint == f"{FLOWS.resolve()}:workflow.flow"
        assert deployment.tags == [f"spojit:workspace={ws.id}"]
        assert deployment.work_pool_name == "spojit"
        assert client.read_work_pool("spojit").type == "process"
        renewals = client.read_deployment_by_name(f"{RENEWALS_NAME}/{RENEWALS_NAME}")
        assert renewals.entrypoint == "spojit_engine.guards.renewals:renewals_flow"
        assert [s.active for s in renewals.schedules] == [True]
    assert bound.guard.hooks.authenticate(name, out["webhook_secret"]).workspace_id == ws.id

    example = json.loads(
        spojit(cli, "deploy", "nightly_digest", "--name", unique("digest"), "-w", ws.name, "--json")
    )
    assert example["schedule"] == "cron 0 6 * * * (UTC)"  # from the workflow's Trigger

    rows = json.loads(spojit(cli, "deployments", "-w", ws.name, "--json"))
    assert [(r["name"], r["status"], r["webhook"], r["queued"]) for r in rows] == [
        (name, "active", name, 0),
        (example["name"], "active", None, 0),
    ]

    bound.debit(ws.id, bound.balance(ws.id).remaining, key="drain")  # really out of credits
    bound.guard.exhaust(
        ws.id,
        scope="",
        cause=Cause.CREDITS,
        needed_ucr=1,
        reason="Out of credits: workspace ops has 0.00 credits.",
    )
    rows = json.loads(spojit(cli, "deployments", "-w", ws.name, "--json"))
    assert [(r["status"], r["reason"].split(";")[0]) for r in rows] == [
        ("paused by the guard", f"Out of credits: workspace {ws.name} has 0.00 credits")
    ] * 2  # the reason is told from the live card (Guard.reason_now)
    assert rows[0]["schedules"] == ["every 30s (off)"]
    table = spojit(cli, "deployments", "-w", ws.name)
    assert "paused by" in table and "Deployments" in table


def test_deploy_can_reserve_estimates_and_mark_its_runs_test(cli: CliRunner, bound: Engine) -> None:
    ws = bound.create_workspace(unique("scoped"), plan="free")
    out = json.loads(
        spojit(cli, "deploy", str(FLOWS), "--name", unique("designer"), "--reserve", "p95",
               "--test", "--sample", "3", "--max-credits", "2.5", "-w", ws.name, "--json")
    )  # fmt: skip
    with prefect() as client:
        deployment = client.read_deployment(out["deployment_id"])
    assert sorted(deployment.tags) == ["spojit:reserve=p95", f"spojit:workspace={ws.id}"]
    assert deployment.parameters == {"test": True, "sample": 3, "max_credits": "2.5"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--cron", "every day"], "Error: --cron 'every day' is not a cron expression."),
        (
            ["--cron", "0 6 * * *", "--interval", "60"],
            "Error: Give --cron or --interval, not both.",
        ),
        (["--interval", "0"], "Error: --interval must be at least 1 second."),
        (["--name", "no spaces"], "Error: Deployment name 'no spaces' must be 1-128 letters"),
        (["--max-credits-per-run", "-1"], "Error: Amount -1 must be more than zero credits."),
        (["--reserve", "all"], "Error: --reserve must be p95 or max, not 'all'."),
        (["--sample", "2"], "Error: A sample size or credit cap scopes a test run; add --test."),
    ],
)
def test_bad_deploy_options_are_one_sentence(
    cli: CliRunner, bound: Engine, args: list[str], error: str
) -> None:
    bound.create_workspace(unique("bad"), plan="free")
    result = cli.invoke(app, ["deploy", str(FLOWS), *args])
    assert result.exit_code == 1 and result.output.startswith(error), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_deploy_without_a_prefect_server_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    env |= {"SPOJIT_HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "prefect")}
    subprocess.run([SPOJIT, "init"], env=env, capture_output=True, check=True, timeout=120)
    result = subprocess.run(
        [SPOJIT, "deploy", str(FLOWS), "--interval", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == (
        "Error: No Prefect API is configured; set PREFECT_API_URL to your Prefect server "
        "(`prefect server start`) and try again."
    )
