"""What keeps PostgreSQL's one-call debit cheap stays true (migration 0011): no index covers a
column every debit updates (so the update is HOT and the burn-order reads stay small); the debit
keeps ``usage_daily`` itself, exactly, and leaves the trigger armed for every other writer; a
session that lost the prepared call still debits (the Python path answers, the session is
dropped, the next call opens another). Its sessions closing with the engine: test_fast_debit.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from spojit_engine import Engine
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.reads.rollup import usage_daily

# Columns a debit writes on every call; an index on any of them makes the write a non-HOT one.
UPDATED_BY_EVERY_DEBIT = {
    "grants": {"remaining_ucr"},
    "workspaces": {"credits_ucr", "held_ucr"},
    "usage_daily": {"credits_ucr", "calls"},
    "usage_models_daily": {"credits_ucr", "calls"},
}


def test_no_index_covers_a_column_every_debit_updates(engine: Engine) -> None:
    inspector = inspect(engine.sa_engine)
    for table, columns in UPDATED_BY_EVERY_DEBIT.items():
        for index in inspector.get_indexes(table):
            assert not columns & set(index["column_names"]), (table, index["name"])


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_debit_keeps_usage_daily_itself_and_the_trigger_stays_armed(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter").id
    ledger = engine.ledger
    assert ledger.fast_debit is not None
    answered = ledger.fast_debit.answered
    call = Usage("leads", "transform.map", "m1", False, node_call="node:a")
    ledger.debit(ws, amount_ucr=1_000, key="a1", usage=call)
    ledger.debit(ws, amount_ucr=2_000, key="a2", usage=call)  # the same call: no second call
    ledger.debit(ws, amount_ucr=4_000, key="b", usage=Usage("leads", "transform.map", "m1"))
    assert ledger.fast_debit.answered == answered + 3
    d = usage_daily.c
    with engine.sa_engine.connect() as conn:
        rows = conn.execute(select(d.credits_ucr, d.calls).where(d.workspace_id == ws)).all()
        # Within one transaction, the flag that tells the trigger to skip is off again after
        # the call, so any later insert of the same transaction is rolled up by the trigger.
        conn.execute(
            text(
                "SELECT * FROM spojit_debit(:ws, 'c', 8000, now() AT TIME ZONE 'UTC', NULL, 0,"
                " NULL, NULL, NULL, false, NULL, NULL)"
            ),
            {"ws": ws},
        )
        flag = conn.execute(text("SELECT current_setting('spojit.rollup_posted', true)"))
        assert flag.scalar() != "on"
        conn.rollback()
    assert rows == [(7_000, 2)]
    assert engine.verify(ws) == 1


@pytest.fixture
def one_session(engine: Engine) -> tuple[Engine, str, Any]:
    """A PostgreSQL engine after one debit: the workspace, and the one debit session it opened
    (the call prepared in it)."""
    ws = engine.create_workspace("acme", plan="starter").id
    pg_debit = engine.ledger.fast_debit
    assert pg_debit is not None
    engine.ledger.debit(ws, amount_ucr=1_000, key="first", usage=Usage())
    (session,) = pg_debit.sessions.idle
    return engine, ws, session


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_session_that_lost_the_prepared_call_still_debits(
    one_session: tuple[Engine, str, Any],
) -> None:
    engine, ws, session = one_session
    ledger, pg_debit = engine.ledger, engine.ledger.fast_debit
    assert pg_debit is not None
    session.pgconn.exec_(b"DEALLOCATE ALL")
    answered = pg_debit.answered
    ledger.debit(ws, amount_ucr=1_000, key="after", usage=Usage())  # answered by Python
    assert session.closed  # dropped
    ledger.debit(ws, amount_ucr=1_000, key="again", usage=Usage())  # a new session
    assert pg_debit.answered == answered + 1
    assert engine.balance(ws).consumed == Decimal("0.003")
    assert engine.verify(ws) == 1
