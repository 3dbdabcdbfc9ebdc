"""Where alerts may go, and what a rule may say: a webhook on a loopback, link-local or private
address (or a name resolving to one) is refused when the rule is added and again before each
delivery, unless ``SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS`` allows it; a delivery never repeats what
the receiver answered; and a rule's text and numbers are checked the same on SQLite and
PostgreSQL, so nothing PostgreSQL would refuse reaches it."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from spojit_engine import Engine
from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput
from spojit_engine.notify.schema import notification_rules
from spojit_engine.notify.targets import PrivateTarget, is_public
from spojit_engine.settings import Settings

PRIVATE_URLS = [
    "http://127.0.0.1:5432/",
    "http://localhost:8000/hook",  # a name that resolves to loopback
    "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "http://10.1.2.3/x",
    "https://192.168.1.10/x",
    "http://172.16.0.1/x",
    "http://[::1]:8080/x",
    "http://[::ffff:127.0.0.1]/x",  # loopback, written as IPv6
    "http://0.0.0.0:22/",
    "http://100.64.0.1/",  # carrier-grade NAT: not public either
]


@pytest.fixture
def strict(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine with the default: private targets refused (on SQLite, then PostgreSQL)."""
    settings = Settings(home=tmp_path, notify_allow_private_targets=False)  # the default
    assert Settings.model_fields["notify_allow_private_targets"].default is False
    engine = Engine(database_url, settings=settings)
    yield engine
    engine.close()


def rule_count(engine: Engine) -> int:
    with read_transaction(engine.sa_engine) as conn:
        return int(conn.execute(select(func.count()).select_from(notification_rules)).scalar_one())


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_private_target_is_refused_when_the_rule_is_added(strict: Engine, url: str) -> None:
    ws = strict.create_workspace("acme").id
    with pytest.raises(PrivateTarget, match="SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS=true") as refused:
        strict.add_notification(ws, webhook=url)
    assert str(refused.value).count(".") >= 1 and "\n" not in str(refused.value)
    assert rule_count(strict) == 0


def test_public_targets_are_accepted_and_the_setting_allows_private_ones(
    strict: Engine, tmp_path: Path
) -> None:
    ws = strict.create_workspace("acme").id
    strict.add_notification(ws, webhook="https://93.184.215.14/hook")  # a public address
    allowing = Engine(
        strict.database_url, settings=Settings(home=tmp_path, notify_allow_private_targets=True)
    )
    allowing.add_notification(ws, webhook="http://127.0.0.1:9/hook")
    allowing.close()
    assert rule_count(strict) == 2
    assert is_public("8.8.8.8") and not is_public("::ffff:10.0.0.1") and not is_public("fe80::1")


def test_delivery_checks_the_target_again(sqlite_engine: Engine, receiver: Any) -> None:
    """A rule written while private targets were allowed is not delivered once they are not."""
    ws = sqlite_engine.create_workspace("acme").id
    rule = sqlite_engine.add_notification(ws, webhook=receiver.url)  # allowed (conftest)
    sqlite_engine.settings.notify_allow_private_targets = False
    sent = sqlite_engine.test_notification(ws, rule.id)
    assert sent.state != "sent" and "loopback, private or link-local" in str(sent.last_error)
    assert receiver.bodies == []


@pytest.fixture
def banner_server() -> Iterator[str]:
    """A service on loopback that is not HTTP: it answers any connection with its banner."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:  # a reply line and a blank one, as a Redis or SMTP banner reads
                conn.sendall(b"+OK SECRET-BANNER-4711\r\n\r\n")
                stop.wait(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join(5)
    server.close()


def test_a_test_alert_never_repeats_what_the_receiver_answered(
    sqlite_engine: Engine, banner_server: str
) -> None:
    ws = sqlite_engine.create_workspace("acme").id
    rule = sqlite_engine.add_notification(ws, webhook=banner_server)  # allowed (conftest)
    sent = sqlite_engine.test_notification(ws, rule.id)
    assert sent.state != "sent" and str(sent.last_error).startswith(f"POST {banner_server} failed")
    assert "SECRET" not in str(sent.last_error) and "+OK" not in str(sent.last_error)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"kind": "run_above", "workflow": "w" * 300, "above": "5"}, "workflow"),
        ({"kind": "run_above", "workflow": "le\x00ads", "above": "5"}, "U+0000"),
        ({"kind": "run_above", "workflow": "le\ud800ads", "above": "5"}, "lone surrogate"),
        ({"kind": "regression", "workflow": "leads", "factor": "Infinity"}, "factor"),
        ({"kind": "regression", "workflow": "leads", "factor": "NaN"}, "factor"),
        ({"kind": "regression", "workflow": "leads", "factor": "1e9"}, "at most 1000"),
        ({"kind": "regression", "workflow": "leads", "factor": "1.0005"}, "decimal places"),
        ({"kind": "regression", "workflow": "leads", "factor": "two"}, "factor"),
        ({"kind": "run_above", "workflow": "leads", "above": "Infinity"}, "finite"),
    ],
)
def test_a_rule_is_checked_the_same_on_both_databases(
    strict: Engine, fields: dict[str, Any], says: str
) -> None:
    ws = strict.create_workspace("acme").id
    strict.debit(ws, "1", key="leads-known", workflow="leads")
    with pytest.raises(InvalidInput, match=re.escape(says)) as refused:
        strict.add_notification(ws, webhook="https://93.184.215.14/hook", runs=5, **fields)
    assert str(refused.value).endswith(".") and "\n" not in str(refused.value)
    assert rule_count(strict) == 0
    kept = strict.add_notification(ws, webhook="https://93.184.215.14/hook", kind="regression",
                                   workflow="leads", factor="999.125", runs=5)  # fmt: skip
    assert str(kept.factor) == "999.125"
