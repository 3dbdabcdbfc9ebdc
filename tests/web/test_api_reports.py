"""The reports over HTTP: the breakdown's total equals consumed, and the timeline day by day."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from stripe_fakes import PUBLIC_URL, Shop

from spojit_engine import Engine
from spojit_engine.metering.store.usage import UsageRow, record_usage
from spojit_engine.web.app import create_app


def test_the_breakdown_total_and_the_timeline_add_up_to_consumed(
    client: TestClient, acme: Shop
) -> None:
    engine, ws = acme.engine, acme.workspace_id
    engine.debit(ws, Decimal("5.897728"), key="a", workflow="leads", member_id=acme.member.id)
    engine.debit(ws, Decimal("2"), key="b", workflow="digest", member_id=acme.admin.id)
    admin = {"Authorization": f"Bearer {acme.admin.token}"}
    member = {"Authorization": f"Bearer {acme.member.token}"}

    consumed = client.get("/api/v1/usage", headers=admin).json()["consumed"]
    breakdown = client.get("/api/v1/usage/breakdown?by=workflow", headers=admin).json()
    assert breakdown["total"] == {"credits": consumed, "calls": 2} and consumed == "7.897728"
    days = client.get("/api/v1/usage/timeline", headers=admin).json()
    assert sum(Decimal(d["credits"]) for d in days) == Decimal(consumed)
    assert (days[-1]["workflow"], days[-1]["workflow_credits"]) == ("leads", "5.897728")

    own = client.get("/api/v1/usage/timeline?days=1", headers=member).json()
    assert [(d["credits"], d["workflow"]) for d in own] == [("5.897728", "leads")]
    bad = client.get("/api/v1/usage/timeline?days=0", headers=admin)
    assert bad.status_code == 400 and "error" in bad.json()


def test_test_or_live_and_who_ran_it_read_the_same_on_the_api_the_pages_and_the_cli(
    web_engine: Engine, acme: Shop, tmp_path: Path
) -> None:
    """One label each, decided once (``results.run_label``, ``results.member_label``): ``test``
    / ``live``, never ``True``; a run no member started is the ``operator``'s, never ``—``."""
    engine, ws = web_engine, acme.workspace_id
    for run, member_id, test in (("run-op", None, True), ("run-ana", acme.admin.id, False)):
        engine.debit(ws, Decimal("1.5"), key=run, workflow="leads", member_id=member_id,
                     test_run=test)  # fmt: skip
        record_usage(engine.sa_engine, UsageRow(
            key=run, workspace_id=ws, workflow="leads", flow_run_id=run, task_run_id=None,
            attempt=1, node_name="n", node_type="connector", mode="direct", models=None,
            tokens_in=0, tokens_out=0, tokens_cached=0, llm_calls=0, credits_ucr=1_500_000,
            member_id=member_id, test_run=test, status="ok", error=None,
            created_at=datetime.now(UTC), trigger="manual",
        ))  # fmt: skip
    client = TestClient(create_app(engine), base_url=PUBLIC_URL, follow_redirects=False)
    admin = {"Authorization": f"Bearer {acme.admin.token}"}
    by_run = client.get("/api/v1/usage/breakdown?by=test_run", headers=admin).json()["rows"]
    assert sorted((r["run"], r["test_run"]) for r in by_run) == [("live", False), ("test", True)]
    runs = client.get("/api/v1/executions", headers=admin).json()
    assert sorted((r["run"], r["member"]) for r in runs) == [
        ("live", "admin@acme.io"), ("test", None),
    ]  # fmt: skip

    link = engine.login_link(ws, member_id=acme.admin.email)
    assert client.get(link.url.removeprefix(PUBLIC_URL)).status_code == 303
    billing = client.get("/billing").text
    for label in ("test", "live", "operator", "admin@acme.io"):
        assert f'<th scope="row">{label}</th>' in billing, label
    assert "<td>operator</td>" in client.get("/executions").text

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(tmp_path / "cli"), "SPOJIT_DATABASE_URL": engine.database_url,
            "COLUMNS": "200"}  # fmt: skip

    def spojit(*args: str) -> str:
        done = subprocess.run([str(Path(sys.executable).with_name("spojit")), *args], env=env,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout

    table = spojit("usage", "--breakdown", "--by", "test_run,member", "-w", "acme")
    assert "True" not in table and "False" not in table and "operator" in table
    assert " test " in table and " live " in table
    assert "operator" in spojit("executions", "-w", "acme")
