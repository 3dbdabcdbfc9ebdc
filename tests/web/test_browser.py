"""The pages in a real browser: Debian's Chromium driven by Playwright, against ``spojit serve``'s
app under uvicorn on a loopback port, with the fake Stripe client behind ``Engine``.

One browser per session (pytest-playwright), one server per module; each test saves a screenshot
under ``test-artifacts/browser`` (``SPOJIT_TEST_ARTIFACTS`` moves it). Without /usr/bin/chromium
the tests skip, except under CI, where they fail (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from stripe_fakes import FakeStripe, Shop, billing_settings, open_shop, session_event, signed

from spojit_engine import Engine
from spojit_engine.display import credits_column, credits_exact
from spojit_engine.metering.store.usage import UsageRow, record_usage

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SPOJIT_TEST_ARTIFACTS", "test-artifacts")) / "browser"
# The card's amounts in the order they share one number of places (display.credits_column).
CARD = ("consumed", "remaining", "allowance_remaining", "topup_remaining", "other_remaining",
        "held", "overdraft")  # fmt: skip


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright launches this instead of a downloaded browser."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests must run under CI: {reason}.")
        pytest.skip(reason)
    return {"executable_path": str(CHROMIUM), "headless": True}


class Clock:
    """The server's clock: now, plus whatever a test moves it by."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Site:
    url: str
    engine: Engine
    stripe: FakeStripe
    shop: Shop
    clock: Clock
    env: dict[str, str]

    def cli(self, *args: str) -> Any:
        """``spojit ARGS --json`` against this site's database, parsed."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("spojit")), *args, "--json"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def login_link(self, email: str, *, ttl: timedelta | None = None) -> str:
        """A link through the Engine (the first test makes one with the CLI)."""
        ws = self.shop.workspace_id
        return self.engine.login_link(ws, member_id=email, ttl=ttl).url


def _seed(engine: Engine, shop: Shop) -> None:
    """Consumption as the meter writes it: ledger debits and the runs' usage records."""
    now = datetime.now(UTC)
    runs = [  # run, workflow, node type, member, credits, test run, trigger, minutes ago
        ("run-1", "leads", "connector.agent", shop.admin, "41.25", False, "schedule", 50),
        ("run-2", "leads", "transform.structured", shop.admin, "12.5", False, "webhook", 40),
        ("run-3", "digest", "knowledge", shop.member, "7.125", False, "manual", 30),
        ("run-4", "digest", "connector.direct", shop.member, "3", True, "test", 20),
        ("run-5", "leads", "connector.agent", shop.admin, "0.000125", True, "test", 10),
    ]
    for run, workflow, node_type, who, credits, test, trigger, ago in runs:
        engine.debit(shop.workspace_id, Decimal(credits), key=f"seed:{run}", workflow=workflow,
                     node_type=node_type, member_id=who.id, test_run=test)  # fmt: skip
        kind, _, mode = node_type.partition(".")
        record_usage(
            engine.sa_engine,
            UsageRow(
                key=f"seed:{run}", workspace_id=shop.workspace_id, workflow=workflow,
                flow_run_id=f"{run}-0000-4000-8000-000000000000", task_run_id=None, attempt=1,
                node_name=f"{kind}-node", node_type=kind, mode=mode or None,
                models="gpt-4o-mini", tokens_in=1834, tokens_out=256, tokens_cached=0,
                llm_calls=1, credits_ucr=int(Decimal(credits) * 1_000_000), member_id=who.id,
                test_run=test, status="ok", error=None,
                created_at=now - timedelta(minutes=ago), run_name=f"brisk-{run}", trigger=trigger,
            ),
        )  # fmt: skip
    engine.hold(shop.workspace_id, Decimal("2.5"), key="seed:hold", ttl=timedelta(hours=2))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    """``create_app(engine)`` under uvicorn on a free loopback port, in a thread."""
    import uvicorn

    from spojit_engine.web.app import create_app

    home = tmp_path_factory.mktemp("site")
    shutil.copy(sqlite_template, home / "ledger.db")
    database_url = f"sqlite:///{home / 'ledger.db'}"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock, fake = Clock(), FakeStripe()
    settings = billing_settings(home, public_url=url, database_url=database_url)
    engine = Engine(database_url, settings=settings, stripe_http_client=fake, clock=clock)
    shop = open_shop(engine, fake, plan="starter")
    _seed(engine, shop)
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    env = {**os.environ, "SPOJIT_HOME": str(home), "SPOJIT_DATABASE_URL": database_url,
           "SPOJIT_PUBLIC_URL": url}  # fmt: skip
    env.pop("SPOJIT_TOKEN", None)
    yield Site(url, engine, fake, shop, clock, env)
    server.should_exit = True
    thread.join(10)
    engine.close()


def snap(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def figure(page: Any, name: str) -> tuple[str, str]:
    """A card amount as shown, and the exact value in its title."""
    shown = page.locator(f'[data-figure="{name}"] .amount').first
    return str(shown.inner_text()), str(shown.get_attribute("title")).removesuffix(" credits")


def test_an_admin_signs_in_and_the_card_and_breakdown_equal_spojit_usage(
    site: Site, page: Any
) -> None:
    link = site.cli("login-link", "--member", site.shop.admin.email, "--ttl", "5")
    assert set(link) >= {"url", "expires_at"}
    page.goto(link["url"])
    assert page.url == f"{site.url}/billing"
    page.keyboard.press("Tab")  # the first stop is the skip link, then the main content
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    usage = site.cli("usage", "--workspace", "acme")
    column = credits_column(Decimal(usage[name]) for name in CARD)
    for name, text in zip(CARD, column, strict=True):
        if name in ("other_remaining", "overdraft") and not Decimal(usage[name]):
            continue  # shown only when there is some
        assert figure(page, name) == (text, usage[name]), name
    assert page.get_by_role("heading", name="Usage this period").is_visible()
    consumed, remaining = Decimal(usage["consumed"]), Decimal(usage["remaining"])
    used_percent = int(consumed / (consumed + remaining) * 100)
    assert page.locator('[role="progressbar"]').get_attribute("aria-valuenow") == str(used_percent)
    breakdown = page.get_by_text("View breakdown")
    breakdown.focus()
    page.keyboard.press("Enter")  # the disclosure opens from the keyboard, no script needed
    totals = page.locator("table[data-breakdown] [data-total]")
    assert totals.count() == 4
    for i in range(4):  # each total is exactly consumed
        exact = totals.nth(i).locator(".amount").get_attribute("title")
        assert exact == f"{usage['consumed']} credits"
    assert page.get_by_role("button", name="Buy 500 credits").is_visible()
    snap(page, "admin-billing")


def test_an_admin_buys_credits_and_the_card_shows_them_after_the_webhook(
    site: Site, page: Any
) -> None:
    before = site.engine.balance(site.shop.workspace_id).topup_remaining
    page.goto(site.login_link(site.shop.admin.email))
    # Stripe's hosted page, played by the fake: its "return" link is the session's success URL.
    page.route(
        "https://checkout.stripe.test/**",
        lambda route: route.fulfill(content_type="text/html", body=_fake_checkout(site)),
    )
    page.get_by_role("button", name="Buy 2,500 credits").click()
    page.wait_for_url("https://checkout.stripe.test/c/pay/cs_test_*")
    session_id = page.url.rsplit("/", 1)[1]
    assert site.stripe.sessions[session_id]["metadata"]["pack"] == "medium"
    body, signature = signed(
        session_event("evt_browser_1", "checkout.session.completed",
                      site.stripe.pay(session_id), payment_status="paid")
    )  # fmt: skip
    answer = httpx.post(f"{site.url}/webhooks/stripe", content=body,
                        headers={"Stripe-Signature": signature})  # fmt: skip
    assert answer.status_code == 200, answer.text
    page.get_by_role("link", name="Return to spojit").click()  # a cross-site navigation back
    page.wait_for_url(f"{site.url}/billing/success?session_id={session_id}")
    page.get_by_role("heading", name="Usage this period").wait_for()
    assert "Payment received: 2,500.00 credits were added" in page.inner_text("main")
    assert figure(page, "topup_remaining")[1] == credits_exact(before + 2500)
    snap(page, "admin-after-topup")


def _fake_checkout(site: Site) -> str:
    created = [r for r in site.stripe.requests if r.path == "/v1/checkout/sessions"][-1]
    session_id = site.stripe.by_idempotency_key[created.headers["Idempotency-Key"]]
    back = created.form["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
    return f"<html><body><h1>Stripe Checkout (fake)</h1><a href='{back}'>Return to spojit</a>"


def test_a_member_sees_no_buying_and_only_their_own_executions(site: Site, page: Any) -> None:
    page.goto(site.login_link(site.shop.member.email))
    assert page.get_by_role("heading", name="Usage this period").is_visible()
    assert page.get_by_role("heading", name="Buy credits").count() == 0
    assert page.get_by_role("button", name="Change plan").count() == 0
    assert page.locator("form[action='/billing/topup']").count() == 0
    snap(page, "member-billing")
    page.get_by_role("link", name="Executions").click()
    page.wait_for_url(f"{site.url}/executions")  # count the rows of the new page, not the old
    rows = page.locator("#runs tbody tr")
    rows.first.wait_for()
    assert [rows.nth(i).get_attribute("data-run")[:5] for i in range(rows.count())] == [
        "run-4", "run-3",
    ]  # fmt: skip
    assert "member@acme.io" in rows.nth(0).inner_text() and "test" in rows.nth(0).inner_text()
    snap(page, "member-executions")
    page.get_by_role("link", name="brisk-run-3").click()
    assert page.locator("[data-total]").inner_text() == "7.125"
    snap(page, "member-run")
    missing = page.goto(f"{site.url}/executions/run-1-0000-4000-8000-000000000000")
    assert missing is not None and missing.status == 404  # an admin's run: as if it did not exist


def test_a_used_or_expired_link_is_refused(site: Site, page: Any) -> None:
    link = site.login_link(site.shop.admin.email)
    assert page.goto(link).ok
    again = page.goto(link)
    assert again is not None and again.status == 401
    assert "already used" in page.inner_text("main")
    snap(page, "link-used")
    short = site.login_link(site.shop.admin.email, ttl=timedelta(minutes=1))
    site.clock.offset = timedelta(minutes=2)
    try:
        late = page.goto(short)
    finally:
        site.clock.offset = timedelta(0)
    assert late is not None and late.status == 401 and "expired" in page.inner_text("main")


def test_a_cross_site_post_or_a_wrong_csrf_token_is_refused(site: Site, page: Any) -> None:
    page.goto(site.login_link(site.shop.admin.email))
    orders = len(site.engine.orders(site.shop.workspace_id))
    attack = (
        f"<form method='post' action='{site.url}/billing/topup'>"
        "<input type='hidden' name='pack' value='large'><button>Win a prize</button></form>"
    )
    page.route("http://evil.test/**", lambda route: route.fulfill(content_type="text/html",
                                                                  body=attack))  # fmt: skip
    page.goto("http://evil.test/")
    page.get_by_role("button", name="Win a prize").click()
    page.wait_for_url(f"{site.url}/billing/topup")
    assert "not signed in" in page.inner_text("main")  # SameSite=Strict: no cookie went along
    snap(page, "cross-site-post")
    for token in (None, "0" * 64):  # from the signed-in browser itself: the cookie goes along
        form = {"pack": "large"} | ({"csrf_token": token} if token else {})
        refused = page.request.post(f"{site.url}/billing/topup", form=form, max_redirects=0)
        assert refused.status == 403 and "nothing was changed" in refused.text()
    assert len(site.engine.orders(site.shop.workspace_id)) == orders


class Receiver:
    """A webhook receiver on a loopback port: records each POSTed JSON body."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_an_admin_adds_tests_and_removes_a_notification(site: Site, page: Any) -> None:
    site.engine.settings.notify_allow_private_targets = True  # the receiver is on loopback
    receiver = Receiver()
    page.goto(site.login_link(site.shop.admin.email))
    page.get_by_role("link", name="Notifications").click()
    page.get_by_label("A live run of the workflow costs more than a limit").check()
    page.get_by_label("URL or block").fill(receiver.url)
    page.get_by_role("button", name="Add notification").click()  # no workflow named
    assert "needs a workflow" in page.get_by_role("alert").inner_text()
    page.get_by_label("The workspace reaches 75 %").check()
    page.get_by_label("URL or block").fill(receiver.url)
    page.get_by_role("button", name="Add notification").click()
    assert page.get_by_role("status").inner_text() == "Notification added."
    [rule] = site.engine.notification_rules(site.shop.workspace_id)
    page.get_by_role("button", name=f"Send a test of rule {rule.id}").click()
    assert "Test sent" in page.get_by_role("status").inner_text()
    assert [m["subject"] for m in receiver.received] == ["acme: a test notification"]
    assert "sent" in page.locator("#sent tbody tr").first.inner_text()
    snap(page, "admin-notifications")
    page.get_by_role("button", name=f"Remove rule {rule.id}").click()
    assert site.engine.notification_rules(site.shop.workspace_id) == []
    receiver.server.shutdown()


def test_a_member_has_no_notifications_page(site: Site, page: Any) -> None:
    page.goto(site.login_link(site.shop.member.email))
    assert page.get_by_role("link", name="Notifications").count() == 0
    refused = page.goto(f"{site.url}/settings/notifications")
    assert refused is not None and refused.status == 403


PHONE_WIDTH_PX = 390
# Each table's visible box (its own, or that of the nearest ancestor that scrolls or clips it)
# against its card's (or main's, for a table outside any card): whether it stays inside.
TABLES_INSIDE = """() => [...document.querySelectorAll('table')].map(table => {
  const card = table.closest('section.card, main');
  let box = table;
  for (let e = table.parentElement; e && e !== card; e = e.parentElement) {
    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX)) { box = e; break; }
  }
  const b = box.getBoundingClientRect(), c = card.getBoundingClientRect();
  const name = table.id || table.dataset.breakdown || table.querySelector('caption')?.textContent;
  return [name, b.left >= c.left - 0.5 && b.right <= c.right + 0.5];
})"""


def test_at_390_px_no_page_scrolls_sideways_and_no_table_leaves_its_card(
    site: Site, page: Any
) -> None:
    ws = site.shop.workspace_id
    rule = site.engine.add_notification(  # a long target: its table must scroll, not the page
        ws, webhook="https://hooks.example.com/services/T0000000/B0000000/" + "x" * 60
    )
    page.set_viewport_size({"width": PHONE_WIDTH_PX, "height": 844})
    page.goto(site.login_link(site.shop.admin.email))
    pages = {
        "billing": "/billing",
        "executions": "/executions",
        "run": "/executions/run-1-0000-4000-8000-000000000000",
        "notifications": "/settings/notifications",
    }
    for name, path in pages.items():
        page.goto(site.url + path)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        width = page.evaluate("document.scrollingElement.scrollWidth")
        snap(page, f"phone-{name}")
        assert width <= PHONE_WIDTH_PX, f"{path} is {width} px wide"
        tables = page.evaluate(TABLES_INSIDE)
        assert tables and all(inside for _, inside in tables), (path, tables)
    page.goto(site.url + "/login/no-such-link")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE_WIDTH_PX
    site.engine.remove_notification(ws, rule.id)
