"""Connections to PostgreSQL across a restart, short of restarting one (a private cluster does
that for real: ``tests/scale/test_ledger_restart.py``): a server that refuses connections is
waited for, within the bound, then reported — by the ledger and by the Knowledge node's index;
a server that answers "no such database" is reported at once; a pooled session the server cut
off is replaced before it is used."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import psycopg
import pytest
from e2e_support import free_port
from sqlalchemy.exc import OperationalError

from spojit_engine import Engine, db
from spojit_engine.errors import LedgerUnavailable
from spojit_engine.nodes.vector_index import VectorIndex
from spojit_engine.settings import get_settings

APP = "spojit_cut_off"  # names this test's sessions, so only they are cut off


@pytest.fixture
def quick_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "ledger_retry_seconds_max", 2.0)
    monkeypatch.setattr(settings, "ledger_retry_backoff_seconds", 0.1)


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Retrying connecting" in r.getMessage()]


OPENERS: dict[str, tuple[Callable[[str], object], type[Exception]]] = {
    "the ledger": (Engine, LedgerUnavailable),
    "a Knowledge index": (lambda url: VectorIndex("faq", database_url=url), OperationalError),
}


@pytest.mark.parametrize("opener", OPENERS)
def test_a_server_that_refuses_connections_is_waited_for_then_reported(
    opener: str, quick_bound: None, caplog: pytest.LogCaptureFixture
) -> None:
    open_with, error = OPENERS[opener]
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/spojit"
    with (
        caplog.at_level(logging.WARNING, logger="spojit_engine.db"),
        pytest.raises(error, match="Connection refused"),
    ):
        open_with(url)
    assert _retries(caplog), "a refused connection is what a restart looks like: wait for it"


@pytest.mark.postgres
def test_a_database_that_does_not_exist_is_reported_at_once(
    postgres_url: str, quick_bound: None, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/spojit_no_such_database"
    with (
        caplog.at_level(logging.WARNING, logger="spojit_engine.db"),
        pytest.raises(LedgerUnavailable, match="does not exist"),
    ):
        Engine(url)
    assert _retries(caplog) == []


@pytest.fixture
def named_engine(postgres_url: str) -> Iterator[Engine]:
    engine = Engine(f"{postgres_url}?application_name={APP}")
    yield engine
    engine.close()


def _cut_off(postgres_url: str) -> int:
    """Terminate this test's sessions, as a restart does; how many there were."""
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (APP,),
        ).fetchone()
    return int(cut[0]) if cut else 0


@pytest.mark.postgres
def test_a_pooled_session_the_server_cut_off_is_replaced_before_it_is_used(
    postgres_url: str, named_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = named_engine.create_workspace("cut-off", plan="starter")
    before = named_engine.balance(ws.id)
    assert _cut_off(postgres_url) >= 1
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # every pooled session has idled enough
    assert named_engine.balance(ws.id) == before  # a read: nothing retries it but the ping
    assert _cut_off(postgres_url) >= 1  # the replacement was a new session of this engine
