"""Connections to PostgreSQL across a restart, short of restarting one (a private cluster does
that for real: ``tests/scale/test_ledger_restart.py``): a server that refuses connections is
waited for, within the bound, then reported — by the ledger and by the Knowledge node's index;
a server that answers "no such database" is reported at once; a pooled session the server cut
off is replaced before it is used."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from e2e_support import free_port
from sqlalchemy.exc import OperationalError

from spojit_engine import Engine, db
from spojit_engine.errors import LedgerUnavailable
from spojit_engine.nodes.vector_index import VectorIndex
from spojit_engine.settings import get_settings

APP = "spojit_cut_off"  # names this test's sessions, so only they are cut off
PASSWORD = "hunter2-secret"
SPOJIT = str(Path(sys.executable).with_name("spojit"))


@pytest.fixture
def quick_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "ledger_retry_seconds_max", 2.0)
    monkeypatch.setattr(settings, "ledger_retry_backoff_seconds", 0.1)


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING lines a wait for the database left: one per wait, not one per attempt."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "Waiting for the database" in r.getMessage()
    ]


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
        caplog.at_level(logging.DEBUG, logger="spojit_engine.db"),
        pytest.raises(error, match="Connection refused"),
    ):
        open_with(url)
    # a refused connection is what a restart looks like: wait for it, saying so once
    assert len(_retries(caplog)) == 1, caplog.text
    assert len([r for r in caplog.records if "Waiting for the database" in r.getMessage()]) > 1


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


def spojit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    return subprocess.run([SPOJIT, *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **env})  # fmt: skip


def test_a_down_database_is_one_waiting_line_then_one_sentence(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/spojit"
    done = spojit("usage", env={"SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": url,
                                "SPOJIT_LEDGER_RETRY_SECONDS_MAX": "2"})  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0].startswith("Waiting for the database") and "Connection refused" in lines[0]
    assert lines[1].startswith("Error: The ledger database is unavailable")
    assert PASSWORD not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"mysql://root:{PASSWORD}@127.0.0.1/spojit", "names mysql, which the ledger does not"),
        ("notaurl", "'notaurl' is not a URL like sqlite:///PATH"),
        (f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/x", "u:***@127.0.0.1:notaport/x"),
        ("postgresql+psycopg2://u@127.0.0.1/x", "names postgresql+psycopg2"),
    ],
)
def test_a_database_url_we_cannot_use_is_one_sentence(tmp_path: Path, url: str, said: str) -> None:
    done = spojit("init", env={"SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": url})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert said in lines[0] and PASSWORD not in done.stderr
    assert not (tmp_path / "spojit.db").exists()


def test_masked_hides_every_password() -> None:
    assert db.masked("postgresql+psycopg://ana:s3%40cret@db:5432/x") == (
        "postgresql+psycopg://ana:***@db:5432/x"
    )
    assert db.masked("postgresql://ana@db/x and sqlite:////tmp/x.db") == (
        "postgresql://ana@db/x and sqlite:////tmp/x.db"
    )
    assert db.masked("host=db password='a b' user=ana") == "host=db password=*** user=ana"


@pytest.fixture
def fresh_pg_database(postgres_url: str) -> Iterator[str]:
    """A database of its own (``spojit init`` acts on what is there), dropped afterwards."""
    admin = postgres_url.replace("+psycopg", "")
    name = f"spojit_masked_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_the_password_is_masked_in_what_init_prints(fresh_pg_database: str, tmp_path: Path) -> None:
    scheme, rest = fresh_pg_database.split("://", 1)
    user, at = rest.split("@", 1)
    url = f"{scheme}://{user.split(':')[0]}:{PASSWORD}@{at}"  # trust auth ignores the password
    done = spojit("init", env={"SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert f"{user.split(':')[0]}:***@" in done.stdout, done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env = {**clean, "SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": url}
    serve = subprocess.Popen([SPOJIT, "serve", "--port", str(free_port())], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert serve.stdout is not None
        banner = serve.stdout.readline()
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    assert banner.startswith("Serving http://") and ":***@" in banner, banner
    assert PASSWORD not in banner


def test_the_worker_command_never_prints_a_password() -> None:
    from spojit_engine.cli.commands.deploy import worker_command
    from spojit_engine.settings import Settings

    with_password = Settings(database_url=f"postgresql://ana:{PASSWORD}@db/ledger")
    command = worker_command(with_password, "spojit")
    assert (
        command.startswith('SPOJIT_DATABASE_URL="$SPOJIT_DATABASE_URL" ')
        and PASSWORD not in command
    )
    plain = worker_command(Settings(database_url="postgresql://ana@db/ledger"), "spojit")
    assert plain.startswith("SPOJIT_DATABASE_URL=postgresql://ana@db/ledger ")
