"""Database engine and transactions: SQLite (WAL) under ``SPOJIT_HOME`` by default, PostgreSQL
through ``SPOJIT_DATABASE_URL``. The schema comes from Alembic migrations, never ``create_all``.

Write transactions take the database's strongest cheap lock up front: SQLite ``BEGIN IMMEDIATE``
(one writer at a time, no upgrade deadlocks); on PostgreSQL the ledger locks the workspace row
with ``SELECT … FOR UPDATE``. Read transactions on SQLite start deferred and never block writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spojit_engine.errors import LedgerUnavailable

if TYPE_CHECKING:  # SQLAlchemy is imported when an engine is made, not by readers of constants
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine as SAEngine

# The newest migration; a test pins it to Alembic's head so the two never drift.
SCHEMA_REVISION = "0011_lean_debit"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
POOL_SIZE = 5  # PostgreSQL sessions an engine keeps open (its pool may open as many again)


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the only PostgreSQL driver we ship)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, busy_timeout_seconds: float = 60.0) -> SAEngine:
    """An engine with our SQLite pragmas and transaction begin rules applied."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping: it costs a round trip per transaction; stale connections are recycled.
        return create_engine(url, pool_recycle=1800, pool_size=POOL_SIZE, max_overflow=POOL_SIZE)
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
    with unavailable_as_error(), engine.connect() as conn, conn.begin():
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
        engine.connect().execution_options(**options) as conn,
        conn.begin(),
    ):
        yield conn


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise LedgerUnavailable(f"The ledger database is unavailable: {reason}.") from exc


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
    with unavailable_as_error(), engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
