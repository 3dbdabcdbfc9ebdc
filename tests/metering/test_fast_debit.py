"""The fast debit (sqlite_debit.py, pg_debit.py) answers only the common case and hands every
other one to the Python path, having written nothing: a replayed key, a conflicting one, a debit
the credits do not cover, a workspace due for its renewal. Its own sessions serve any thread and
close with the engine."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from settable_clock import SettableClock

from spojit_engine import Engine
from spojit_engine.errors import IdempotencyConflict, InsufficientCredits
from spojit_engine.metering.core.records import Usage

START = datetime(2026, 11, 1, 10, 23, 17, tzinfo=UTC)
CLOCK_START = START  # where the ``clocked`` engine's clock starts
ALLOWANCE_UCR = 1_000_000_000  # the starter plan's 1,000 credits
CALL = Usage("leads", "transform.map", "m1", node_call="node:a")


def test_the_fast_path_answers_only_the_common_case(
    clocked: tuple[Engine, SettableClock],
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START).id
    ledger, fast = engine.ledger, engine.ledger.fast_debit
    answered = fast.answered

    first = ledger.debit(ws, amount_ucr=400_000_000, key="a", usage=CALL)
    assert fast.answered == answered + 1 and not first.replayed

    again = ledger.debit(ws, amount_ucr=400_000_000, key="a", usage=CALL)
    assert again.replayed and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        ledger.debit(ws, amount_ucr=1, key="a", usage=CALL)
    with pytest.raises(InsufficientCredits):
        ledger.debit(ws, amount_ucr=ALLOWANCE_UCR, key="too-much", usage=CALL)
    assert fast.answered == answered + 1  # none of those three was the fast path's
    assert engine.balance(ws).consumed == Decimal(400)

    clock.now = START + timedelta(days=31)  # past the reset: the renewal is due first
    ledger.debit(ws, amount_ucr=ALLOWANCE_UCR, key="after-reset", usage=CALL)
    assert fast.answered == answered + 1  # the Python path renewed, then debited
    card = engine.balance(ws)
    assert (card.consumed, card.remaining) == (Decimal(1000), Decimal(0))

    clock.now += timedelta(seconds=1)
    ledger.debit(ws, amount_ucr=0, key="free", usage=CALL)  # nothing due: fast again
    assert fast.answered == answered + 2
    assert engine.verify(ws) == 1


def test_its_sessions_serve_any_thread_and_close_with_the_engine(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter").id
    ledger, fast = engine.ledger, engine.ledger.fast_debit
    ledger.debit(ws, amount_ucr=1_000, key="main", usage=Usage())
    (session,) = fast.sessions.idle

    elsewhere = threading.Thread(
        target=ledger.debit,
        args=(ws,),
        kwargs={"amount_ucr": 1_000, "key": "thread", "usage": Usage()},
    )
    elsewhere.start()
    elsewhere.join()
    assert fast.sessions.idle == [session]  # the same session, from another thread
    assert fast.answered == 2

    engine.sa_engine.dispose()
    assert session.closed and not fast.sessions.idle
    ledger.debit(ws, amount_ucr=1_000, key="after", usage=Usage())  # a new session
    assert fast.answered == 3
    assert engine.balance(ws).consumed == Decimal("0.003")
    assert engine.verify(ws) == 1
