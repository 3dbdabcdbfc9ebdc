"""What an operator met scaling out, each fixed: the hook URL follows the serve port, the scripts
and the guides name the Prefect setting Prefect reads, ``spojit deploy --input`` gives scheduled
runs their payload (and refuses what is not JSON in one sentence), an empty workspace's JSON
reads every credit with six places, and ``bench/simulate_scale.py`` passes in its quick mode
(end-to-end: a scratch PostgreSQL database) and refuses a bad database name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spojit_engine import Engine
from spojit_engine.cli.app import app
from spojit_engine.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
PYTHON = sys.executable


def _scale_env(**env: str) -> dict[str, str]:
    """What ``scripts/scale-env.sh`` exports, given these settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPOJIT_", "PREFECT_"))}
    done = subprocess.run(
        ["bash", "-c", f"source {SCRIPTS / 'scale-env.sh'} /tmp/scale-state && env -0"],
        env=base | env, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in done.stdout.split("\0") if "=" in line)


def test_the_public_url_follows_the_port_spojit_serve_listens_on() -> None:
    assert _scale_env(SPOJIT_SCALE_SERVE_PORT="8123")["SPOJIT_PUBLIC_URL"] == (
        "http://127.0.0.1:8123"
    )
    given = _scale_env(SPOJIT_SCALE_SERVE_PORT="8123", SPOJIT_PUBLIC_URL="https://hooks.acme.io")
    assert given["SPOJIT_PUBLIC_URL"] == "https://hooks.acme.io"  # a proxy in front stays
    up = (SCRIPTS / "scale-up.sh").read_text()
    assert "export SPOJIT_PUBLIC_URL='$SPOJIT_PUBLIC_URL'" in up  # in the env file people source


def test_prefects_database_setting_is_the_one_prefect_reads() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/spojit_prefect"
    exported = _scale_env()
    name = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    assert exported[name] == url and "PREFECT_API_DATABASE_CONNECTION_URL" not in exported
    read = subprocess.run(
        [PYTHON, "-c", "from prefect.settings import get_current_settings as s;"
                       " print(s().server.database.connection_url.get_secret_value())"],
        env={**os.environ, name: url}, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert read.stdout.strip() == url
    for guide in ("README.md", "docs/operations.md"):
        text = (ROOT / guide).read_text()
        assert name in text and "PREFECT_API_DATABASE_CONNECTION_URL" not in text, guide


@pytest.fixture
def cli(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """``spojit`` on ``sqlite_engine``'s ledger, as its local operator."""
    monkeypatch.setenv("SPOJIT_DATABASE_URL", sqlite_engine.database_url)
    monkeypatch.delenv("SPOJIT_TOKEN", raising=False)
    monkeypatch.delenv("SPOJIT_WORKSPACE", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _deployments() -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return list(client.read_deployments())


def test_deploy_input_is_the_payload_of_every_run_it_starts(
    cli: CliRunner, sqlite_engine: Engine, prefect_harness: None
) -> None:
    sqlite_engine.create_workspace("ops", plan="free")
    leads = [{"name": "Ana", "email": "ana@acme.io", "company": "Acme"}]
    result = cli.invoke(app, ["deploy", "lead_enrichment", "--interval", "20", "--input",
                              json.dumps(leads), "-w", "ops", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    deployment_id = json.loads(result.output)["deployment_id"]
    (deployment,) = [d for d in _deployments() if str(d.id) == deployment_id]
    assert deployment.parameters == {"payload": leads}

    before = len(_deployments())
    bad = cli.invoke(app, ["deploy", "lead_enrichment", "--name", "bad", "--interval", "20",
                           "--input", "[{'name': 'Ana'}]", "-w", "ops"])  # fmt: skip
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert bad.output.strip().splitlines() == [
        "Error: --input is not JSON: Expecting property name enclosed in double quotes at"
        " character 2."
    ]
    assert len(_deployments()) == before  # nothing deployed


def test_an_empty_workspaces_json_reads_every_credit_with_six_places(
    cli: CliRunner, sqlite_engine: Engine
) -> None:
    sqlite_engine.create_workspace("empty", plan="free")
    result = cli.invoke(app, ["usage", "--breakdown", "-w", "empty", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["consumed"] == "0.000000"
    assert out["breakdown"] == [] and out["breakdown_total"] == {"credits": "0.000000", "calls": 0}


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, str(ROOT / "bench" / "simulate_scale.py"), *args],
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def test_simulate_scale_refuses_a_database_name_it_cannot_use() -> None:
    done = _simulate("--quick", "--database", "sim; DROP DATABASE test")
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "error: --database takes letters, digits and underscores, starting with a letter."
        )
    )


@pytest.mark.e2e
@pytest.mark.postgres
def test_simulate_scale_quick_passes_on_the_partitioned_ledger(postgres_url: str) -> None:
    import psycopg

    name = f"spojit_sim_ci_{os.getpid()}"
    admin = postgres_url.replace("+psycopg", "")
    try:
        done = _simulate("--quick", "--json", "--keep", "--database", name, "--pg-url", admin)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        indexes = _partition_indexes(admin.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for each in (name, f"{name}_base"):
                conn.execute(f'DROP DATABASE IF EXISTS "{each}" WITH (FORCE)')
    assert result["database"] == name and result["quick"] is True
    assert [(s["workspaces"], s["entries"]) for s in result["stages"]] == [
        (200, 2_000),
        (1_000, 20_000),
    ]
    for stage in result["stages"]:
        assert stage["verified_workspaces"] == 20
        assert stage["debit_us_median"] > 0 and stage["latency_vs_baseline"] > 0
        assert set(stage["throughput"]) == {"1", "2"}  # debits/s by client processes
        plans = dict(stage["explain"])
        assert "entries_p" in plans["replay by key"]  # one partition, pruned by workspace
    assert result["verified_after"] == 20
    # The loader dropped the secondary indexes and rebuilt them on every partition.
    assert indexes == {
        "ix_entries_node_call": 16,
        "ix_entries_workspace_created": 16,
        "ix_postings_entry": 16,
        "ix_postings_grant": 16,
    }


def _partition_indexes(url: str) -> dict[str, int]:
    """Each partitioned index of the ledger and how many partitions have theirs."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT parent.relname, count(*) FROM pg_inherits i"
            " JOIN pg_class parent ON parent.oid = i.inhparent"
            " WHERE parent.relkind = 'I' AND parent.relname LIKE 'ix\\_%'"
            " GROUP BY parent.relname"
        ).fetchall()
    return dict(rows)
