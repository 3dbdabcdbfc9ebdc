"""A sign-in link's token never reaches the server's access log: ``create_app`` filters uvicorn's
own access logger, set up the way ``spojit serve`` sets it up (uvicorn's logging config, level
info), and a real uvicorn on a loopback port logs the request lines."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from spojit_engine import Engine
from spojit_engine.web.access_log import redact
from spojit_engine.web.app import create_app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def served(sqlite_engine: Engine) -> Iterator[tuple[str, Lines]]:
    """The app under a real uvicorn, and every line its access logger writes."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(create_app(sqlite_engine), log_level="info")  # as `spojit serve`
    server = uvicorn.Server(config)
    lines = Lines()
    logging.getLogger("uvicorn.access").addHandler(lines)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    yield url, lines
    server.should_exit = True
    thread.join(10)
    logging.getLogger("uvicorn.access").removeHandler(lines)


def test_sign_in_tokens_never_reach_the_access_log(
    served: tuple[str, Lines], sqlite_engine: Engine
) -> None:
    url, lines = served
    ws = sqlite_engine.create_workspace("acme")
    sqlite_engine.add_member(ws.id, "ana@acme.io", role="admin")
    used = sqlite_engine.login_link(ws.id).url.rsplit("/", 1)[1]
    unused = sqlite_engine.login_link(ws.id).url.rsplit("/", 1)[1]
    with httpx.Client(base_url=url) as client:
        assert client.get(f"/login/{used}").status_code == 303
        assert client.get("/login", params={"token": unused}).status_code == 303
        assert client.get("/login/not-a-real-token?x=1").status_code == 401
        assert client.get("/api/v1/plans").status_code == 401
    logged = "\n".join(lines.lines)
    assert '"GET /login/… HTTP/1.1" 303' in logged
    # Once litellm is imported, its own filter on this logger may hide the whole query first.
    assert re.search(r'"GET /login\?(token=…|REDACTED) HTTP/1.1" 303', logged)
    assert '"GET /login/…?x=1 HTTP/1.1" 401' in logged
    assert '"GET /api/v1/plans HTTP/1.1" 401' in logged  # other lines are left as they were
    assert used not in logged and unused not in logged and "not-a-real-token" not in logged


def test_the_redaction_rule() -> None:
    assert redact("/login/abc") == "/login/…"
    assert redact("/login?token=abc&next=/x") == "/login?token=…&next=/x"
    assert redact("/billing?session_id=cs_1") == "/billing?session_id=cs_1"
