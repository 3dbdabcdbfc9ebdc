"""The signed-in pages over HTTP (the browser tests in test_browser.py drive the same in
Chromium): one-time links, the session cookie's attributes, CSRF on every form, who sees what."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from settable_clock import SettableClock
from sqlalchemy import select
from stripe_fakes import FakeStripe, Shop, billing_settings, open_shop

from spojit_engine import Engine, InsufficientCredits
from spojit_engine.metering.store.usage import UsageRow, record_usage
from spojit_engine.signin.schema import browser_sessions, login_links
from spojit_engine.web.app import create_app
from spojit_engine.web.pages.signin import COOKIE


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime.now(UTC))


@pytest.fixture
def page_engine(
    sqlite_engine: Engine, tmp_path: Path, fake_stripe: FakeStripe, clock: SettableClock
) -> Iterator[Engine]:
    engine = Engine(
        sqlite_engine.database_url,
        settings=billing_settings(tmp_path, public_url="http://testserver"),
        stripe_http_client=fake_stripe,
        clock=clock,
    )
    yield engine
    engine.close()


@pytest.fixture
def shop(page_engine: Engine, fake_stripe: FakeStripe) -> Shop:
    return open_shop(page_engine, fake_stripe)


@pytest.fixture
def browser(page_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(page_engine), follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, engine: Engine, shop: Shop, *, admin: bool = True) -> str:
    """Open a fresh login link; returns the page's CSRF token."""
    who = shop.admin if admin else shop.member
    link = engine.login_link(shop.workspace_id, member_id=who.email)
    landed = client.get(link.url.removeprefix("http://testserver"))
    assert landed.status_code == 303 and landed.headers["location"] == "/billing"
    return engine.session_member(client.cookies[COOKIE]).csrf_token


def test_a_login_link_starts_a_session_with_a_strict_httponly_cookie(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    link = page_engine.login_link(shop.workspace_id)  # the first admin by default
    assert link.email == shop.admin.email and link.url.startswith("http://testserver/login/")
    token = link.url.rsplit("/", 1)[1]
    with page_engine.sa_engine.connect() as conn:  # only its hash is stored
        stored = [tuple(r) for r in conn.execute(select(login_links))]
    assert stored and token not in repr(stored)
    landed = browser.get(f"/login/{token}")
    cookie = landed.headers["set-cookie"]
    assert landed.status_code == 303 and landed.headers["location"] == "/billing"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    with page_engine.sa_engine.connect() as conn:
        session_hashes = [r.token_hash for r in conn.execute(select(browser_sessions))]
    assert browser.cookies[COOKIE] not in session_hashes and len(session_hashes) == 1
    page = browser.get("/billing")
    assert page.status_code == 200 and "Usage this period" in page.text
    assert "Buy credits" in page.text and "Change plan" in page.text
    # Catalog sizes read as counts ("Buy 500 credits"), amounts keep their places.
    assert "Buy 500 credits" in page.text and "500.00 credits" not in page.text


def test_under_https_the_cookie_is_secure(
    page_engine: Engine, shop: Shop, tmp_path: Path, fake_stripe: FakeStripe
) -> None:
    settings = billing_settings(tmp_path, public_url="https://spojit.example")
    engine = Engine(page_engine.database_url, settings=settings, stripe_http_client=fake_stripe)
    token = engine.login_link(shop.workspace_id).url.rsplit("/", 1)[1]
    with TestClient(create_app(engine), base_url="https://spojit.example") as client:
        landed = client.get(f"/login/{token}", follow_redirects=False)
        assert "Secure" in landed.headers["set-cookie"]
        assert client.get("/billing").status_code == 200  # sent back over https
    engine.close()


def test_a_used_an_expired_and_an_unknown_link_are_refused(
    browser: TestClient, page_engine: Engine, shop: Shop, clock: SettableClock
) -> None:
    used = page_engine.login_link(shop.workspace_id).url.removeprefix("http://testserver")
    assert browser.get(used).status_code == 303
    again = browser.get(used)
    assert again.status_code == 401 and "already used" in again.text
    late = page_engine.login_link(shop.workspace_id, ttl=timedelta(minutes=5))
    clock.now += timedelta(minutes=5, seconds=1)
    expired = browser.get(late.url.removeprefix("http://testserver"))
    assert expired.status_code == 401 and "expired" in expired.text
    assert browser.get("/login/not-a-token").status_code == 401
    assert browser.get("/login").status_code == 400
    assert browser.get("/login", params={"token": "nope"}).status_code == 401


def test_a_session_expires_and_sign_out_ends_it(
    browser: TestClient, page_engine: Engine, shop: Shop, clock: SettableClock
) -> None:
    csrf = sign_in(browser, page_engine, shop)
    cookie = browser.cookies[COOKIE]
    assert browser.post("/logout", data={}).status_code == 403  # sign-out needs the token too
    out = browser.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 200 and "signed out" in out.text
    browser.cookies.clear()
    browser.cookies.set(COOKIE, cookie)  # a copied cookie is dead after sign-out
    assert browser.get("/billing").status_code == 401
    browser.cookies.clear()
    sign_in(browser, page_engine, shop)
    clock.now += timedelta(hours=page_engine.settings.browser_session_ttl_hours, seconds=1)
    assert browser.get("/billing").status_code == 401


def test_every_form_post_needs_the_session_s_csrf_token(
    browser: TestClient, page_engine: Engine, shop: Shop, fake_stripe: FakeStripe
) -> None:
    csrf = sign_in(browser, page_engine, shop)
    refused = [
        browser.post("/billing/topup", data={"pack": "small"}),
        browser.post("/billing/topup", data={"pack": "small", "csrf_token": "0" * 64}),
        browser.post(
            "/billing/topup",
            data={"pack": "small", "csrf_token": csrf},
            headers={"Origin": "https://evil.example"},
        ),
        browser.post("/billing/plan", data={"plan": "pro"}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert "nothing was changed" in refused[0].text
    assert page_engine.orders(shop.workspace_id) == [] and fake_stripe.requests == []
    assert page_engine.balance(shop.workspace_id).plan == "free"
    bought = browser.post("/billing/topup", data={"pack": "small", "csrf_token": csrf})
    assert bought.status_code == 303
    assert bought.headers["location"].startswith("https://checkout.stripe.test/c/pay/cs_")
    changed = browser.post("/billing/plan", data={"plan": "pro", "csrf_token": csrf})
    assert changed.status_code == 303 and page_engine.balance(shop.workspace_id).plan == "pro"
    # The cookie never authorises the JSON API (bearer tokens only).
    assert browser.get("/api/v1/usage").status_code == 401


def test_a_member_sees_the_card_but_cannot_buy_or_change_plan(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    csrf = sign_in(browser, page_engine, shop, admin=False)
    page = browser.get("/billing")
    assert "Usage this period" in page.text and "Your consumption" in page.text
    assert "Buy credits" not in page.text and "Change plan" not in page.text
    refused = browser.post("/billing/topup", data={"pack": "small", "csrf_token": csrf})
    assert refused.status_code == 403 and "Only a workspace admin" in refused.text
    assert page_engine.orders(shop.workspace_id) == []


def test_pages_ask_to_sign_in_and_reload_once_after_a_cross_site_arrival(
    browser: TestClient,
) -> None:
    plain = browser.get("/billing")
    assert plain.status_code == 401 and "spojit login-link" in plain.text
    arrived = browser.get("/billing", headers={"Sec-Fetch-Site": "cross-site"})
    assert arrived.status_code == 200 and 'http-equiv="refresh"' in arrived.text


def _run(shop: Shop, run: str, member_id: str, ucr: int, at: int) -> UsageRow:
    return UsageRow(
        key=f"{run}/n", workspace_id=shop.workspace_id, workflow="leads", flow_run_id=run,
        task_run_id=None, attempt=1, node_name="lookup", node_type="connector", mode="agent",
        models="gpt-4o-mini", tokens_in=1200, tokens_out=300, tokens_cached=0, llm_calls=1,
        credits_ucr=ucr, member_id=member_id, test_run=False, status="ok", error=None,
        created_at=datetime.now(UTC) - timedelta(minutes=at), run_name=f"{run}-name",
        trigger="manual",
    )  # fmt: skip


def test_executions_pages_and_a_member_sees_only_their_own(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    record_usage(page_engine.sa_engine, _run(shop, "run-a", shop.admin.id, 1_250_000, 2))
    record_usage(page_engine.sa_engine, _run(shop, "run-m", shop.member.id, 500_000, 1))
    sign_in(browser, page_engine, shop)
    listing = browser.get("/executions").text
    assert listing.index("run-m-name") < listing.index("run-a-name")  # latest start first
    detail = browser.get("/executions/run-a")
    assert detail.status_code == 200 and "1.25" in detail.text and "1,200" in detail.text
    sign_in(browser, page_engine, shop, admin=False)
    own = browser.get("/executions").text
    assert "run-m-name" in own and "run-a-name" not in own
    assert browser.get("/executions/run-a").status_code == 404
    api = browser.get(
        "/api/v1/executions",
        params={"offset": 1},
        headers={"Authorization": f"Bearer {shop.admin.token}"},
    ).json()
    assert [(r["flow_run_id"], r["run_name"], r["trigger"]) for r in api] == [
        ("run-a", "run-a-name", "manual")
    ]
    assert Decimal("0.5") == page_engine.execution(shop.workspace_id, "run-m").run.credits


def test_a_csrf_token_is_bound_to_its_own_session(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    first = sign_in(browser, page_engine, shop)
    with TestClient(create_app(page_engine), follow_redirects=False) as other:
        second = sign_in(other, page_engine, shop)
        assert first != second
        crossed = other.post("/billing/plan", data={"plan": "pro", "csrf_token": first})
        assert crossed.status_code == 403
    assert page_engine.balance(shop.workspace_id).plan == "free"


def test_the_notifications_page_is_for_admins_and_its_forms_need_the_token(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    csrf = sign_in(browser, page_engine, shop)
    form = {"kind": "thresholds", "channel": "webhook", "target": "https://hooks.example/x"}
    assert browser.post("/settings/notifications", data=form).status_code == 403
    added = browser.post("/settings/notifications", data=form | {"csrf_token": csrf})
    assert added.status_code == 303
    [rule] = page_engine.notification_rules(shop.workspace_id)
    assert browser.post(f"/settings/notifications/{rule.id}/remove").status_code == 403
    bad = browser.post("/settings/notifications", data=form | {"csrf_token": csrf, "runs": "x"})
    assert bad.status_code == 400 and "whole number" in bad.text
    sign_in(browser, page_engine, shop, admin=False)
    assert browser.get("/settings/notifications").status_code == 403
    member_csrf = page_engine.session_member(browser.cookies[COOKIE]).csrf_token
    removed = browser.post(
        f"/settings/notifications/{rule.id}/remove", data={"csrf_token": member_csrf}
    )
    assert (
        removed.status_code == 403 and len(page_engine.notification_rules(shop.workspace_id)) == 1
    )


def test_the_billing_page_tells_an_admin_how_to_spend_less_and_not_a_member(
    browser: TestClient, page_engine: Engine, shop: Shop
) -> None:
    # An Agent-mode connector that chose the same tool in every call: Direct mode would do.
    for n in range(4):
        row = replace(_run(shop, f"run-{n}", shop.admin.id, 900_000, n), tools="lookup_company")
        record_usage(page_engine.sa_engine, row)
    sign_in(browser, page_engine, shop)
    tips = browser.get("/billing").text
    assert "Spend less" in tips and 'data-advice="direct_mode"' in tips and "leads" in tips
    browser.cookies.clear()
    sign_in(browser, page_engine, shop, admin=False)
    assert "Spend less" not in browser.get("/billing").text


def test_while_the_guard_pauses_work_billing_says_what_why_and_what_fixes_it(
    browser: TestClient, page_engine: Engine, shop: Shop, prefect_harness: None
) -> None:
    """A 1.00-credit step meets 0.41 available credits (0.43 less a running step's 0.02 hold):
    the guard pauses the workflow's schedule. The page names the deployment and the reason —
    in the card's own figure once the hold is gone (0.43, not the 0.41 of that moment); an admin
    gets Buy credits and Change plan, a member is told to ask an admin; a top-up ends it."""
    from guard_helpers import deploy, interval, paid_workflow, unique

    from spojit_engine.metering.meter.runtime import Runtime, use_runtime

    ws = shop.workspace_id
    page_engine.debit(ws, page_engine.balance(ws).remaining - Decimal("0.43"), key="drain")
    hold = page_engine.hold(ws, Decimal("0.02"), key="running-step", ttl=timedelta(minutes=5))
    workflow = paid_workflow(unique("digest"))
    deploy(page_engine, workflow, "hourly", ws, [interval(3600)])
    sign_in(browser, page_engine, shop)
    assert "data-paused" not in browser.get("/billing").text
    with use_runtime(Runtime.create(page_engine)), pytest.raises(InsufficientCredits) as refused:
        workflow.run(None, workspace=ws)
    assert "has 0.41 available" in str(refused.value)  # the balance less the hold, then
    page_engine.release(hold.id)
    page = browser.get("/billing").text
    assert 'data-paused="workspace"' in page and "Scheduled and webhook runs are paused" in page
    assert 'data-figure="remaining"><span class="amount" title="0.430000 credits">' in page
    assert "<strong>hourly</strong>" in page and "has 0.43 credits, less than the 1.00" in page
    assert "0.41" not in page
    [status] = page_engine.deployments(ws)
    assert status.reason is not None and "has 0.43 credits, less than the 1.00" in status.reason
    assert 'href="#buy">Buy credits</a>' in page and 'href="#plan">Change plan</a>' in page
    sign_in(browser, page_engine, shop, admin=False)
    page = browser.get("/billing").text
    assert "Ask a workspace admin to buy credits" in page and 'href="#buy"' not in page
    page_engine.grant(ws, Decimal("5"), kind="promo", key="back")
    assert "data-paused" not in browser.get("/billing").text


def _fetch(value: object) -> object:
    return {"fetched": value}


def test_a_run_stopped_by_its_test_cap_reads_test_cap_reached_everywhere(
    browser: TestClient, page_engine: Engine, shop: Shop, prefect_harness: None, tmp_path: Path
) -> None:
    """The workspace has credits; the test run's own cap (2.00) stopped it at its third 1.00
    step: the page, the run's page, the API and the CLI say so — not "out of credits"."""
    from spojit_engine.metering.meter.runtime import Runtime, use_runtime
    from spojit_engine.nodes import Connector, Workflow

    ws = shop.workspace_id
    workflow = Workflow("capped", [Connector(f"n{i}", _fetch) for i in range(1, 5)])
    with use_runtime(Runtime.create(page_engine)), pytest.raises(InsufficientCredits):
        workflow.run(None, workspace=ws, test=True, max_credits="2")
    sign_in(browser, page_engine, shop)
    listing = browser.get("/executions").text
    assert '<span class="badge bad">test cap reached</span>' in listing
    assert "out of credits" not in listing
    [run] = browser.get(
        "/api/v1/executions", headers={"Authorization": f"Bearer {shop.admin.token}"}
    ).json()
    assert run["status"] == "test cap reached"
    detail = browser.get(f"/executions/{run['flow_run_id']}").text
    assert "test cap reached" in detail and "out of credits" not in detail
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(tmp_path / "cli"), "SPOJIT_DATABASE_URL": page_engine.database_url}
    spojit = str(Path(sys.executable).with_name("spojit"))
    done = subprocess.run([spojit, "executions", "--workspace", "acme", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert [r["status"] for r in json.loads(done.stdout)] == ["test cap reached"]
