"""Web fixtures: ``create_app(engine)`` under FastAPI's TestClient (httpx), the engine's Stripe
client on ``FakeStripe`` (shared with ``tests/billing``), two workspaces to test who sees what."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guards"))  # guard_helpers

from fastapi.testclient import TestClient
from stripe_fakes import FakeStripe, Shop, billing_settings, open_shop

from spojit_engine import Engine
from spojit_engine.web.app import create_app


@pytest.fixture
def fake_stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
def web_engine(sqlite_engine: Engine, tmp_path: Path, fake_stripe: FakeStripe) -> Iterator[Engine]:
    """SQLite only: for tests whose subject is HTTP, not the database."""
    engine = Engine(
        sqlite_engine.database_url,
        settings=billing_settings(tmp_path),
        stripe_http_client=fake_stripe,
    )
    yield engine
    engine.close()


@pytest.fixture
def client(web_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(web_engine)) as test_client:
        yield test_client


@pytest.fixture
def acme(web_engine: Engine, fake_stripe: FakeStripe) -> Shop:
    return open_shop(web_engine, fake_stripe, name="acme")


@pytest.fixture
def beta(web_engine: Engine, fake_stripe: FakeStripe) -> Shop:
    return open_shop(web_engine, fake_stripe, name="beta")
