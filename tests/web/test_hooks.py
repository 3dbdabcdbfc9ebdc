"""``POST /hooks/{name}`` at the door: bad input is refused with the right status and one
sentence, before anything is queued or charged; the queue of an out-of-credits workspace is
bounded, atomically, and answers 402 with the reason past its bound."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from spojit_engine import Engine
from spojit_engine.db import read_transaction
from spojit_engine.errors import InsufficientCredits
from spojit_engine.guards.errors import QueueFull
from spojit_engine.guards.schema import webhook_queue
from spojit_engine.metering.store import schema
from spojit_engine.settings import Settings
from spojit_engine.web.app import create_app

BODY_MAX_BYTES = 2048
QUEUE_MAX = 3


@pytest.fixture
def small(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine with a small body limit and a small webhook queue, on SQLite and PostgreSQL."""
    settings = Settings(
        home=tmp_path, request_body_max_bytes=BODY_MAX_BYTES, webhook_queue_max=QUEUE_MAX
    )
    engine = Engine(database_url, settings=settings)
    yield engine
    engine.close()


class Door:
    def __init__(self, engine: Engine, *, credits: str = "0") -> None:
        self.engine = engine
        self.ws = engine.create_workspace("acme", plan="free")
        drain = engine.balance(self.ws.id).remaining - Decimal(credits)
        engine.debit(self.ws.id, drain, key="drain")
        self.secret = engine.guard.hooks.create(
            "leads",
            workflow="lead_enrichment",
            workspace_id=self.ws.id,
            deployment_id="00000000-0000-0000-0000-000000000000",
        )
        self.client = TestClient(create_app(engine))

    def post(self, name: str = "leads", *, secret: str | None = None, **kwargs: object) -> object:
        headers = {"Authorization": f"Bearer {secret or self.secret}"}
        return self.client.post(f"/hooks/{name}", headers=headers, **kwargs)  # type: ignore[arg-type]

    def ledger_rows(self) -> int:
        with read_transaction(self.engine.sa_engine) as conn:
            return int(conn.execute(select(func.count()).select_from(schema.entries)).scalar_one())

    def queued_rows(self) -> int:
        with read_transaction(self.engine.sa_engine) as conn:
            return int(conn.execute(select(func.count()).select_from(webhook_queue)).scalar_one())


def test_bad_input_is_refused_before_anything_is_queued_or_charged(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, request_body_max_bytes=BODY_MAX_BYTES)
    door = Door(Engine(sqlite_engine.database_url, settings=settings), credits="5")
    entries = door.ledger_rows()
    cases = [
        (door.post("nope", json={"a": 1}), 401, "unauthorized", "No webhook of that name takes"),
        (
            door.post(json={"a": 1}, secret="whk_wrong"),
            401,
            "unauthorized",
            "No webhook of that name takes this secret.",
        ),
        (door.client.post("/hooks/leads", json={"a": 1}), 401, "unauthorized", "No webhook"),
        (
            door.post(content=b"x" * (BODY_MAX_BYTES + 1)),
            413,
            "body_too_large",
            f"The request body is larger than {BODY_MAX_BYTES} bytes.",
        ),
        (
            door.post(content=b'{"a": 1,'),
            400,
            "invalid_input",
            "The request body is not valid JSON: Expecting property name enclosed in double quotes",
        ),
        (door.post(content=b""), 400, "invalid_input", "The request body is empty"),
        (door.post(content=b"\xff\xfe"), 400, "invalid_input", "The request body is not UTF-8"),
    ]
    for answer, status, code, start in cases:
        body = answer.json()  # type: ignore[attr-defined]
        assert answer.status_code == status, body  # type: ignore[attr-defined]
        assert body["code"] == code and body["error"].startswith(start), body
        assert body["error"].endswith("."), body
    assert door.queued_rows() == 0 and door.ledger_rows() == entries
    assert door.engine.balance(door.ws.id).remaining == Decimal("5")
    assert door.engine.guard.state(door.ws.id) is None  # nothing was stopped either


def test_an_out_of_credits_workspace_queues_up_to_its_bound_then_answers_402(small: Engine) -> None:
    door = Door(small)
    answers = [door.post(json={"n": n}) for n in range(QUEUE_MAX + 1)]
    for n, answer in enumerate(answers[:QUEUE_MAX], start=1):
        body = answer.json()  # type: ignore[attr-defined]
        assert answer.status_code == 202 and body["status"] == "queued"  # type: ignore[attr-defined]
        assert body["position"] == n
        assert body["reason"].startswith("Out of credits: workspace acme has 0.00 credits; top up")
    refused = answers[QUEUE_MAX]
    assert refused.status_code == 402  # type: ignore[attr-defined]
    error = refused.json()  # type: ignore[attr-defined]
    assert error["code"] == "webhook_queue_full"
    assert error["error"].startswith(
        f"Webhook leads already has {QUEUE_MAX} requests waiting, its limit; this one was not "
        "queued. Out of credits: workspace acme has 0.00 credits; top up or wait for the reset on "
    )
    assert door.queued_rows() == QUEUE_MAX
    state = small.guard.state(door.ws.id)
    assert state is not None and state.stopped  # the empty balance stopped the workspace


def test_the_queue_bound_holds_under_concurrent_requests(small: Engine) -> None:
    door = Door(small)
    hook = small.guard.hooks.find("leads")
    outcomes: list[str] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        try:
            small.guard.hooks.receive(hook, b'{"n": %d}' % n)
            outcome = "queued"
        except QueueFull:
            outcome = "full"
        except InsufficientCredits as exc:  # pragma: no cover - would be a bug
            outcome = f"other: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["full"] * (8 - QUEUE_MAX) + ["queued"] * QUEUE_MAX
    assert door.queued_rows() == QUEUE_MAX
