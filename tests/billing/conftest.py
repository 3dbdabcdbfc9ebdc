"""Billing fixtures: an Engine whose Stripe client talks to ``FakeStripe`` (no network), on the
parametrised ledger database (SQLite, then PostgreSQL) or on SQLite only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stripe_fakes import FakeStripe, Shop, billing_settings, open_shop

from spojit_engine import Engine


@pytest.fixture
def fake_stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
def billing_engine(database_url: str, tmp_path: Path, fake_stripe: FakeStripe) -> Iterator[Engine]:
    """SQLite, then PostgreSQL: for tests whose subject is the ledger."""
    engine = Engine(
        database_url, settings=billing_settings(tmp_path), stripe_http_client=fake_stripe
    )
    yield engine
    engine.close()


@pytest.fixture
def sqlite_billing_engine(
    sqlite_engine: Engine, tmp_path: Path, fake_stripe: FakeStripe
) -> Iterator[Engine]:
    """The SQLite file only: for tests whose subject is not the database."""
    engine = Engine(
        sqlite_engine.database_url,
        settings=billing_settings(tmp_path),
        stripe_http_client=fake_stripe,
    )
    yield engine
    engine.close()


@pytest.fixture
def shop(billing_engine: Engine, fake_stripe: FakeStripe) -> Shop:
    return open_shop(billing_engine, fake_stripe)
