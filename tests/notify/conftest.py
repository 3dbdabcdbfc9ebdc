"""A local HTTP receiver (a thread on 127.0.0.1) that records every JSON body posted to it. It
listens on loopback, which alerts are refused by default (``notify/targets.py``), so every test
here allows private targets, as an operator with a receiver on the same machine would; the tests
of the refusal build their own settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spojit_engine.settings import get_settings

ALLOW_PRIVATE = "SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with received.lock:
                    received.bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[str]:
        with self.lock:
            return [b.get("event", b.get("subject", "")) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SPOJIT_NOTIFY_ALLOW_PRIVATE_TARGETS=true`` for this process's settings and the CLI's."""
    monkeypatch.setenv(ALLOW_PRIVATE, "true")
    monkeypatch.setattr(get_settings(), "notify_allow_private_targets", True)
