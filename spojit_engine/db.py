"""Database engine and transactions: SQLite (WAL) under ``SPOJIT_HOME`` by default, PostgreSQL
through ``SPOJIT_DATABASE_URL``. The schema comes from Alembic migrations, never ``create_all``.

Write transactions take the database's strongest cheap lock up front: SQLite ``BEGIN IMMEDIATE``
(one writer at a time, no upgrade deadlocks); on PostgreSQL the ledger locks the workspace row
with ``SELECT … FOR UPDATE``. Read transactions on SQLite start deferred and never block writers.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from spojit_engine.errors import InvalidInput, LedgerUnavailable

if TYPE_CHECKING:  # SQLAlchemy is imported when an engine is made, not by readers of constants
    from sqlalchemy import Connection
    from sqlalchemy.engine import URL
    from sqlalchemy.engine import Engine as SAEngine

# The databases (and their drivers) the ledger runs on: what a database URL may name.
DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg",)}
URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
# The newest migration; a test pins it to Alembic's head so the two never drift.
SCHEMA_REVISION = "0013_partitions"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
POOL_SIZE = 5  # PostgreSQL sessions an engine keeps open (its pool may open as many again)
RETRY_WAIT_SECONDS_MAX = 2.0
# A pooled PostgreSQL session idle this long is pinged before it is used: shorter than any
# restart, so a session a restart cut off is replaced rather than failing its next transaction,
# and longer than the gaps between a busy process's transactions, which never pay the ping.
IDLE_PING_SECONDS = 0.25
# How a PostgreSQL server that is restarting or failing over answers a new connection (psycopg
# gives no SQLSTATE for these). Anything else — a database or role that does not exist, a host
# name that does not resolve — is an answer, reported at once.
RESTARTING = (
    "connection refused",
    "the database system is",  # starting up, shutting down, in recovery mode
    "server closed the connection",
    "connection reset",
    "timeout expired",
    "too many clients",
)

# A password in a URL (``scheme://user:PASSWORD@host``) or a libpq connection string
# (``password=PASSWORD``): what ``masked`` hides in anything we print, log or answer.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEY_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
MASK = "***"

T = TypeVar("T")
_log = logging.getLogger(__name__)
# Set while a wait is under way in this context: a wait nested in it (a retried operation's
# connect) says nothing more — one "waiting" line per wait, not one per attempt.
_waiting: ContextVar[bool] = ContextVar("spojit_waiting_for_database", default=False)


def masked(text: str) -> str:
    """``text`` (a database URL, an error, a log line) with every password in it as ``***``:
    the one way a database URL is shown — banners, errors, logs, JSON."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the only PostgreSQL driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def parse_url(url: str) -> URL:
    """``url`` parsed, or ``InvalidInput`` (one sentence, its password masked) when it is no
    URL or names a database or driver the ledger does not run on."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        raise InvalidInput(
            f"The database URL {masked(url)!r} is not a URL like {URL_FORMS}."
        ) from None
    if parsed.get_driver_name() not in DRIVERS.get(parsed.get_backend_name(), ()):
        raise InvalidInput(
            f"The database URL names {parsed.drivername}, which the ledger does not run on; "
            f"use {URL_FORMS}."
        )
    return parsed


def make_engine(url: str, *, busy_timeout_seconds: float = 60.0) -> SAEngine:
    """An engine with our SQLite pragmas and transaction begin rules applied."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    parsed = parse_url(url)
    url = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping on every checkout: it costs a round trip per transaction. Only after idling.
        engine = create_engine(url, pool_recycle=1800, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
        event.listen(engine, "checkin", _idle_from)
        event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # isolation_level=None: the driver issues no BEGIN of its own; ours below does.
        connect_args={"timeout": busy_timeout_seconds, "isolation_level": None},
        poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _idle_from(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a session that idled ``IDLE_PING_SECONDS``; if it is dead (the server restarted),
    the pool drops every session older than now and connects afresh."""
    from sqlalchemy.exc import InvalidatePoolError

    idle_since = record.info.pop("idle_since", None)
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as exc:
        raise InvalidatePoolError(reason(exc)) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed ledger entry survives a power cut, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = "DEFERRED" if connection.get_execution_options().get("spojit_read_only") else "IMMEDIATE"
    connection.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(engine: SAEngine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def write_transaction(engine: SAEngine) -> Iterator[Connection]:
    """A transaction that may write; commits on success, rolls back on any error."""
    with unavailable_as_error(), connect(engine) as conn, conn.begin():
        yield conn


@contextmanager
def read_transaction(engine: SAEngine) -> Iterator[Connection]:
    """A consistent read snapshot that takes no write lock: SQLite ``BEGIN DEFERRED`` (WAL: one
    snapshot from the first read); PostgreSQL ``REPEATABLE READ READ ONLY`` (one snapshot for
    every statement, so a card's figures agree with each other; read-only transactions never
    fail to serialise)."""
    options: dict[str, Any] = {"spojit_read_only": True}
    if not is_sqlite(engine):
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with (
        unavailable_as_error(),
        connect(engine).execution_options(**options) as conn,
        conn.begin(),
    ):
        yield conn


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        raise LedgerUnavailable(f"The ledger database is unavailable: {reason(exc)}.") from exc


def wait_while_unavailable(
    attempt: Callable[[], T], what: str, *, retry_on: Callable[[Exception], bool]
) -> T:
    """``attempt()``, made again while it fails with an error ``retry_on`` accepts, until
    ``SPOJIT_LEDGER_RETRY_SECONDS_MAX`` has passed since the first try (so waits nested in one
    another end together, not one after the other); then its error goes up. Waits double from
    ``SPOJIT_LEDGER_RETRY_BACKOFF_SECONDS`` up to ``RETRY_WAIT_SECONDS_MAX``. The first retry
    logs one WARNING ("Waiting for the database…"); the others, and nested waits, only DEBUG."""
    from spojit_engine.settings import get_settings

    settings = get_settings()
    deadline = time.monotonic() + settings.ledger_retry_seconds_max
    wait = settings.ledger_retry_backoff_seconds
    said = _waiting.get()
    token = _waiting.set(True)
    try:
        while True:
            try:
                return attempt()
            except Exception as exc:
                if not retry_on(exc) or time.monotonic() + wait > deadline:
                    raise
                _log.log(logging.DEBUG if said else logging.WARNING,
                         "Waiting for the database (%s) for up to %g s: retrying %s.",
                         reason(exc), settings.ledger_retry_seconds_max, what)  # fmt: skip
                said = True
            time.sleep(wait)
            wait = min(wait * 2, RETRY_WAIT_SECONDS_MAX)
    finally:
        _waiting.reset(token)


def connect(engine: SAEngine) -> Connection:
    """A connection for one transaction. Nothing has been sent when connecting fails, so while a
    PostgreSQL server restarts (a fresh process's first transaction, or any after the pool saw
    the old connections die) this waits for it, as long as a ledger operation is retried."""
    if is_sqlite(engine):
        return engine.connect()  # a file: a failure to open it is no restart
    return wait_while_unavailable(engine.connect, "connecting", retry_on=_restarting)


def _restarting(exc: Exception) -> bool:
    from sqlalchemy.exc import OperationalError

    said = reason(exc).lower()
    return isinstance(exc, OperationalError) and any(sign in said for sign in RESTARTING)


def reason(exc: Exception) -> str:
    """The first line of an error, the driver's own where SQLAlchemy wrapped it (``orig``)."""
    text = str(getattr(exc, "orig", None) or exc)
    return masked(text.splitlines()[0]) if text else type(exc).__name__


def current_revision(engine: SAEngine) -> str | None:
    """The migration the database is at, or None when it has never been migrated."""
    with read_transaction(engine) as conn:
        if not engine.dialect.has_table(conn, "alembic_version"):
            return None
        from sqlalchemy import text

        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: SAEngine) -> None:
    """Bring the schema to the newest migration (idempotent; Alembic imported only when needed)."""
    if current_revision(engine) == SCHEMA_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with unavailable_as_error(), connect(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
