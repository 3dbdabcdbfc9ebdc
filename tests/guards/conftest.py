"""Guard fixtures: an engine bound as the metered nodes' runtime, over the session's Prefect
test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spojit_engine import Engine
from spojit_engine.metering.meter.runtime import Runtime, use_runtime


@pytest.fixture
def bound(sqlite_engine: Engine, prefect_harness: None) -> Iterator[Engine]:
    """SQLite only, for tests whose subject is Prefect rather than the database."""
    with use_runtime(Runtime.create(sqlite_engine)):
        yield sqlite_engine


@pytest.fixture
def bound_on_each_db(engine: Engine, prefect_harness: None) -> Iterator[Engine]:
    with use_runtime(Runtime.create(engine)):
        yield engine
