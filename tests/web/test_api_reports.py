"""The reports over HTTP: the breakdown's total equals consumed, and the timeline day by day."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient
from stripe_fakes import Shop


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
