"""``spojit topup`` / ``spojit plan`` as a person runs them: a real process whose Stripe client
(stripe-python's own HTTP client) is pointed by ``SPOJIT_STRIPE_API_BASE`` at a local test server
standing in for Stripe — the same seam that points it at stripe-mock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import pytest

from spojit_engine import Engine

SPOJIT = str(Path(sys.executable).with_name("spojit"))


class StripeStub(BaseHTTPRequestHandler):
    """Answers POST /v1/checkout/sessions the way Stripe does, and remembers what it was sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        self.received.append({"path": self.path, "headers": dict(self.headers), "form": form})
        session = {
            "id": "cs_test_cli",
            "object": "checkout.session",
            "url": "https://checkout.stripe.test/c/pay/cs_test_cli",
            "payment_status": "unpaid",
            "status": "open",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "metadata": {},
        }
        data = json.dumps(session).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stripe_stub() -> Iterator[str]:
    StripeStub.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StripeStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A real ``spojit`` process (slow on a loaded machine: used once)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    clean.update(SPOJIT_HOME=str(home), NO_PROXY="127.0.0.1,localhost", **env)
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, env=clean, timeout=120)


def invoke(home: Path, *args: str, **env: str) -> Any:
    """The same command in this process (typer's CliRunner), settings read afresh."""
    from typer.testing import CliRunner

    from spojit_engine.cli import app
    from spojit_engine.settings import get_settings

    names = ("SPOJIT_STRIPE_API_KEY", "SPOJIT_STRIPE_API_BASE", "SPOJIT_TOKEN")
    full = {name: None for name in names} | {"SPOJIT_HOME": str(home), **env}
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=full)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    engine = Engine(f"sqlite:///{home / 'spojit.db'}")
    ws = engine.create_workspace("acme", plan="free")
    engine.add_member(ws.id, "admin@acme.io", role="admin")
    engine.close()
    yield home


def test_topup_prints_the_checkout_url_from_a_real_process(home: Path, stripe_stub: str) -> None:
    bought = run(
        home,
        "topup",
        "large",
        SPOJIT_STRIPE_API_KEY="sk_test_cli",
        SPOJIT_STRIPE_API_BASE=stripe_stub,
        SPOJIT_STRIPE_NETWORK_RETRIES_MAX="0",
        SPOJIT_PUBLIC_URL="https://spojit.example.com",
    )
    assert bought.returncode == 0, bought.stderr
    assert "https://checkout.stripe.test/c/pay/cs_test_cli" in bought.stdout
    [request] = StripeStub.received
    order_id = request["form"]["metadata[order_id]"]
    assert request["path"] == "/v1/checkout/sessions"
    assert request["headers"]["Idempotency-Key"] == f"spojit-checkout-{order_id}"
    assert request["headers"]["Authorization"] == "Bearer sk_test_cli"
    assert request["form"]["payment_intent_data[metadata][credits]"] == "10000.000000"
    assert request["form"]["success_url"].startswith("https://spojit.example.com/billing/success")


def test_only_admins_buy_and_errors_are_one_sentence(home: Path, stripe_stub: str) -> None:
    stripe_env = {"SPOJIT_STRIPE_API_KEY": "sk_test_cli", "SPOJIT_STRIPE_API_BASE": stripe_stub}
    member = json.loads(invoke(home, "member", "add", "m@acme.io", "--json").stdout)
    refused = invoke(home, "topup", "small", SPOJIT_TOKEN=member["token"], **stripe_env)
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "Error: Only a workspace admin may buy top-ups; m@acme.io is a member."
    )
    unknown = invoke(home, "topup", "jumbo", **stripe_env)
    assert unknown.exit_code == 1 and "choose one of large, medium, small" in unknown.stderr
    unconfigured = invoke(home, "topup", "small")
    assert unconfigured.exit_code == 1 and "SPOJIT_STRIPE_API_KEY" in unconfigured.stderr
    assert StripeStub.received == []
    bought = invoke(home, "topup", "small", "--json", **stripe_env)
    assert bought.exit_code == 0, bought.stderr
    assert json.loads(bought.stdout)["session_id"] == "cs_test_cli"


def test_plan_set_and_list(home: Path) -> None:
    up = invoke(home, "plan", "set", "pro", "--json")
    assert up.exit_code == 0 and json.loads(up.stdout)["plan"] == "pro"
    changed = json.loads(up.stdout)  # an upgrade says what it added and what the guard resumed
    assert Decimal(changed["credits_added"]) > 0 and changed["resumed"] == []
    down = invoke(home, "plan", "set", "starter")
    assert "until the reset" in down.stdout and "then becomes starter" in down.stdout
    listed = json.loads(invoke(home, "plan", "list", "--json").stdout)
    assert [p["credits"] for p in listed["packs"]] == ["500.000000", "2500.000000", "10000.000000"]
    gold = invoke(home, "plan", "set", "gold")
    assert gold.exit_code == 1 and gold.stderr.startswith("Error: Unknown plan 'gold'")
