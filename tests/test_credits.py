"""Admin credit commands: ``spojit credits grant|list`` (a real process on a SQLite file) and
``POST|GET /api/v1/grants``; every grant records who and why, members may not grant."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_cli import run

from spojit_engine import Engine, InvalidInput
from spojit_engine.cli.commands.credits import check_grant_request, expiry_of
from spojit_engine.web.app import create_app


def test_credits_grant_and_list_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    info = json.loads(run(home, "init", "--workspace", "acme", "--json").stdout)
    granted = run(home, "credits", "grant", "12.5", "--reason", "conference  voucher",
                  "--expires", "2099-12-31")  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert "Added 12.50 credits (promo, through 2099-12-31)" in granted.stdout, granted.stdout
    assert "Nothing was paused by the guard." in granted.stdout
    listed = json.loads(run(home, "credits", "list", "--json").stdout)
    promo = [g for g in listed if g["kind"] == "promo"]
    assert len(promo) == 1 and promo[0]["amount"] == "12.500000"
    assert promo[0]["granted_by"] == "operator" and promo[0]["reason"] == "conference voucher"
    assert promo[0]["expires_at"].startswith("2100-01-01T00:00:00")
    table = run(home, "credits", "list")
    assert {"conference", "voucher", "operator", "plan"} <= set(table.stdout.split())

    member = json.loads(
        run(home, "member", "add", "bo@acme.io", "--json", token=info["admin"]["token"]).stdout
    )
    refused = run(home, "credits", "grant", "5", "--reason", "x", token=member["token"])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "admin" in refused.stderr
    by_admin = run(home, "credits", "grant", "1", "--reason", "thanks", "--kind", "adjustment",
                   "--json", token=info["admin"]["token"])  # fmt: skip
    assert json.loads(by_admin.stdout)["grant"]["granted_by"] == info["admin"]["id"]
    for bad in (["abc", "--reason", "x"], ["1", "--reason", "x", "--expires", "2001-01-01"]):
        answer = run(home, "credits", "grant", *bad)
        assert answer.returncode == 1 and answer.stderr.startswith("Error: "), (bad, answer)
        assert "Traceback" not in answer.stderr
    after = json.loads(run(home, "credits", "list", "--json").stdout)
    assert len(after) == len(listed) + 1  # the refused ones wrote nothing


def test_grants_over_http_are_for_admins_and_record_who_and_why(sqlite_engine: Engine) -> None:
    ws = sqlite_engine.create_workspace("acme", plan="free")
    admin = sqlite_engine.add_member(ws.id, "ana@acme.io", role="admin")
    member = sqlite_engine.add_member(ws.id, "bo@acme.io", role="member")
    client = TestClient(create_app(sqlite_engine))
    as_admin = {"Authorization": f"Bearer {admin.token}"}
    body = {"amount": "50", "reason": "launch promo", "kind": "promo"}
    created = client.post("/api/v1/grants", json=body, headers=as_admin)
    assert created.status_code == 201, created.json()
    out = created.json()
    assert out["grant"]["amount"] == "50.000000" and out["grant"]["granted_by"] == admin.id
    assert out["resumed"] == [] and out["resume_pending"] is False
    assert Decimal(out["remaining"]) == sqlite_engine.balance(ws.id).remaining
    listed = client.get("/api/v1/grants", headers=as_admin).json()
    assert [g["reason"] for g in listed if g["kind"] == "promo"] == ["launch promo"]
    as_member = {"Authorization": f"Bearer {member.token}"}
    assert client.post("/api/v1/grants", json=body, headers=as_member).status_code == 403
    assert client.get("/api/v1/grants", headers=as_member).status_code == 403
    assert client.get("/api/v1/grants").status_code == 401
    for bad in ({**body, "amount": "-1"}, {**body, "reason": ""}, {**body, "kind": "topup"},
                {**body, "expires_at": "2001-01-01T00:00:00Z"}, {**body, "extra": 1}):  # fmt: skip
        answer = client.post("/api/v1/grants", json=bad, headers=as_admin)
        assert answer.status_code == 400, (bad, answer.json())
    assert len(client.get("/api/v1/grants", headers=as_admin).json()) == len(listed)
    assert "/api/v1/grants" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("reason", "kind", "expires", "error"),
    [
        ("  ", "promo", None, "--reason must say why"),
        ("x" * 501, "promo", None, "--reason must say why"),
        ("ok", "topup", None, "--kind must be promo or adjustment"),
        ("ok", "promo", "soon", "--expires must be a date"),
    ],
)
def test_bad_grant_options_are_one_sentence(
    reason: str, kind: str, expires: str | None, error: str
) -> None:
    with pytest.raises(InvalidInput, match=error):
        check_grant_request(reason, kind)
        expiry_of(expires)


def test_expires_means_through_that_utc_day() -> None:
    assert expiry_of("2027-01-31") == datetime(2027, 2, 1, tzinfo=UTC)
    assert expiry_of(None) is None


def test_deployments_at_80_columns_fold_names_never_cut_them() -> None:
    from rich.console import Console

    from spojit_engine.cli.commands.deploy import deployments_table
    from spojit_engine.guards.deployments.status import DeploymentStatus

    name = "nightly-digest-for-the-finance-team-eu-west"
    reason = "Out of credits: workspace acme has 0.00 credits; top up or wait for the reset."
    row = DeploymentStatus(
        "dep-1", name, "nightly_digest", "ws1", ["every 10s (off)"], "paused by the guard",
        reason, name, 2,
    )  # fmt: skip
    console = Console(width=80, record=True)
    console.print(deployments_table([row], {"ws1": "acme"}))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    assert name in cells  # folded over lines, every character still there
    assert "…" not in text
