"""The web package's layout holds: its faces are pinned and lazy, a template restates no number
the code defines, and a page or route names the members it shows in one read, not one per row."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from stripe_fakes import PUBLIC_URL, Shop

from spojit_engine import Engine
from spojit_engine.metering.store.usage import UsageRow, record_usage
from spojit_engine.web.app import create_app

FACES = {
    "spojit_engine.web": ["create_app"],
    "spojit_engine.web.api": [
        "billing", "deployments", "grants", "hooks", "members", "openapi", "reports",
        "stripe_webhook",
    ],
    "spojit_engine.web.pages": [
        "PageRefused", "billing", "charts", "executions", "members", "notifications", "signin",
        "templating",
    ],
}  # fmt: skip


@pytest.mark.parametrize("face", sorted(FACES))
def test_each_face_names_what_it_exports(face: str) -> None:
    import importlib

    package = importlib.import_module(face)
    assert package.__all__ == FACES[face]
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_importing_the_faces_imports_no_router_and_no_fastapi() -> None:
    code = (
        "import sys, spojit_engine.web, spojit_engine.web.api, spojit_engine.web.pages; "
        "print(sorted(m for m in sys.modules if m.startswith(('spojit_engine.web.', 'fastapi'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['spojit_engine.web.api', 'spojit_engine.web.pages']"


def browser_of(engine: Engine, shop: Shop) -> TestClient:
    """A client signed in as the shop's admin (the settings' public URL is https)."""
    client = TestClient(create_app(engine), base_url=PUBLIC_URL, follow_redirects=False)
    link = engine.login_link(shop.workspace_id, member_id=shop.admin.email)
    assert client.get(link.url.removeprefix(PUBLIC_URL)).status_code == 303
    return client


def test_the_notifications_page_shows_the_thresholds_and_limits_of_the_code(
    web_engine: Engine, acme: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spojit_engine.notify.decide import THRESHOLDS_PERCENT
    from spojit_engine.web.pages import notifications

    assert notifications.THRESHOLDS_PERCENT is THRESHOLDS_PERCENT
    web_engine.add_notification(acme.workspace_id, webhook="https://hooks.example.com/a")
    monkeypatch.setattr(notifications, "THRESHOLDS_PERCENT", (50, 80))
    monkeypatch.setattr(notifications, "CHARS_MAX", {"workflow": 33, "target": 444})
    page = browser_of(web_engine, acme).get("/settings/notifications").text
    assert "reaches 50 % and 80 % of its period's credits" in page
    assert "reaches 50 %, 80 % of its credits" in page
    assert 'list="workflows" maxlength="33"' in page and 'required maxlength="444"' in page
    assert "75 %" not in page and "2048" not in page


def test_members_are_named_in_one_read_not_one_per_row(
    web_engine: Engine, acme: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, who in enumerate((acme.admin, acme.member, acme.admin)):
        key = f"run-{n}"
        web_engine.debit(acme.workspace_id, Decimal(1), key=key, workflow="leads",
                         node_type="transform", member_id=who.id)  # fmt: skip
        record_usage(
            web_engine.sa_engine,
            UsageRow(
                key=key, workspace_id=acme.workspace_id, workflow="leads", flow_run_id=key,
                task_run_id=None, attempt=1, node_name="t", node_type="transform", mode=None,
                models="", tokens_in=0, tokens_out=0, tokens_cached=0, llm_calls=0,
                credits_ucr=1_000_000, member_id=who.id, test_run=False, status="ok", error=None,
                created_at=datetime.now(UTC), run_name=key, trigger="manual",
            ),
        )  # fmt: skip

    def one_by_one(member_id: str) -> None:
        raise AssertionError(f"member {member_id} was looked up on its own")

    monkeypatch.setattr(web_engine, "member", one_by_one)
    browser = browser_of(web_engine, acme)
    emails = (acme.admin.email, acme.member.email)
    for path in ("/billing", "/executions", "/executions/run-1"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert acme.member.email in page.text, path
    api = browser.get("/api/v1/executions", headers={"Authorization": f"Bearer {acme.admin.token}"})
    assert api.status_code == 200
    assert sorted({r["member"] for r in api.json()}) == sorted(emails)
