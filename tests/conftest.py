"""Shared fixtures: one parametrised ledger database (a real SQLite file and the real PostgreSQL
on 127.0.0.1:5432), and a clean ``SPOJIT_HOME`` so no test touches the user's ``~/.spojit``."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from settable_clock import SettableClock

from spojit_engine import Engine
from spojit_engine.db import make_engine, migrate
from spojit_engine.metering.meter.runtime import Runtime, use_runtime
from spojit_engine.settings import get_settings

PG_ADMIN_URL = os.environ.get(
    "SPOJIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LEDGER_TABLES = (
    "stripe_rejects, stripe_events, stripe_payments, topup_orders, "
    "workflow_budgets, webhook_queue, workflow_hooks, guard_pauses, deployment_bindings, "
    "usage_records, postings, entries, holds, grants, members, workspaces"
)


# The suite's own knobs, kept when the rest of the caller's SPOJIT_* and PREFECT_* go: the test
# PostgreSQL and cluster binaries, fuzz and bench settings, where screenshots go, and an optional
# stripe-mock for the contract test. None of them points at a user's data.
KEPT_PREFIXES = ("SPOJIT_TEST_", "SPOJIT_FUZZ_", "SPOJIT_BENCH_", "SPOJIT_STRIPE_API_BASE")


def isolate_from_the_caller(cache: Path) -> None:
    """The suite runs in its own home and databases whatever the caller exported: an operator's
    ``SPOJIT_HOME``, ``SPOJIT_DATABASE_URL`` or ``PREFECT_API_URL`` would otherwise point the tests
    (and every ``spojit`` process they start with this environment) at that person's data."""
    for name in list(os.environ):
        if name.startswith(("SPOJIT_", "PREFECT_")) and not name.startswith(KEPT_PREFIXES):
            del os.environ[name]
    os.environ["SPOJIT_HOME"] = str(cache / "spojit_home")
    get_settings.cache_clear()


def worker_dir(cache: Path) -> Path:
    """This process's corner of the cache: each parallel worker (pytest-xdist) gets its own homes,
    so one worker's Prefect results or default database never show up in another's test."""
    return cache / os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config: pytest.Config) -> None:
    cache = worker_dir(Path(config.rootpath) / ".pytest_cache")
    isolate_from_the_caller(cache)
    # Before anything imports Prefect: its own home, no analytics, and LiteLLM's local price map.
    (cache / "prefect_home").mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(cache / "prefect_home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["SPOJIT_LLM_MODE"] = "mock"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests go first, so the parallel workers do not wait on one of them at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the one-line reason it does not."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; a test that sets ``SPOJIT_*`` (monkeypatch) must see its
    own values, and the next test must not see them."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this session, dropped at the end.

    Skips with the reason when PostgreSQL is down, except under CI, where it must run.
    """
    reason = _postgres_reachable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {reason}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is unreachable: {reason}")
    import psycopg

    name = f"spojit_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file each test copies, so each test starts from a clean ledger."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


def _truncate(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {LEDGER_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated ledger database: a SQLite file, then the real PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = Engine(database_url)
    yield eng
    eng.close()


@pytest.fixture
def clocked(
    database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Engine, SettableClock]]:
    """An engine on each database whose clock starts at the test module's ``CLOCK_START``."""
    clock = SettableClock(request.module.CLOCK_START)
    eng = Engine(database_url, clock=clock)
    yield eng, clock
    eng.close()


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """For tests whose subject is not the database: the SQLite file only."""
    path = tmp_path / "ledger.db"
    shutil.copy(sqlite_template, path)
    eng = Engine(f"sqlite:///{path}")
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes 15-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The session server's API, for ``spojit`` processes a test starts: with it they skip starting
    an ephemeral Prefect server each (15-60 s), as an operator's configured processes do."""
    from prefect.settings import PREFECT_API_URL

    url: str = PREFECT_API_URL.value()
    return url


@pytest.fixture
def runtime(engine: Engine, prefect_harness: None) -> Iterator[Runtime]:
    """Metered nodes bill ``engine`` while the test runs."""
    with use_runtime(Runtime.create(engine)) as bound:
        yield bound
