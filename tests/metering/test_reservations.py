"""Run reservations through the Engine facade: what a run's charges draw, what closing gives back,
what the sweeper voids, and the calls that are refused (the state machine covers the arithmetic
against a model; these pin the interface other parts build on)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time

from spojit_engine import Engine, InsufficientCredits, InvalidInput

D = Decimal


def test_a_run_draws_from_its_reservation_and_closing_gives_back_the_rest(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free").id  # 100 credits
    held = engine.reserve_run(ws, D("30"), flow_run_id="run-1")
    assert (held.key, held.state, held.amount) == ("reserve:run-1", "held", D("30"))
    assert engine.reserve_run(ws, D("30"), flow_run_id="run-1").replayed
    # Another run cannot take the reserved credits ...
    with pytest.raises(InsufficientCredits):
        engine.debit(ws, D("70.000001"), key="other")
    # ... the run itself draws them without needing free credits.
    engine.debit(ws, D("60"), key="other-2")
    drawn = engine.debit(ws, D("25"), key="n1", flow_run_id="run-1")
    assert (drawn.amount, drawn.held) == (D("-25"), D("-25"))
    assert engine.balance(ws).held == D("5")
    # 5 left in it: a charge of 10 takes those 5 and 5 free credits (there are 10 free).
    assert engine.debit(ws, D("10"), key="n2", flow_run_id="run-1").held == D("-5")
    with pytest.raises(InsufficientCredits):
        engine.debit(ws, D("5.000001"), key="n3", flow_run_id="run-1")
    closed = engine.close_run_reservation("run-1")
    assert closed is not None and (closed.state, closed.settled) == ("settled", D("30"))
    assert engine.close_run_reservation("run-1") == closed  # closing twice changes nothing
    balance = engine.balance(ws)
    assert (balance.held, balance.remaining, balance.consumed) == (D("0"), D("5"), D("95"))
    engine.verify(ws)


def test_an_unclosed_reservation_is_voided_by_the_sweeper_keeping_what_was_drawn(
    engine: Engine,
) -> None:
    with freeze_time("2025-03-01 12:00:00") as frozen:
        ws = engine.create_workspace("acme", plan="free").id
        engine.reserve_run(ws, D("40"), flow_run_id="crashed", ttl=timedelta(minutes=5))
        engine.debit(ws, D("15"), key="n1", flow_run_id="crashed")
        frozen.tick(timedelta(minutes=5))
        assert ws in engine.sweep()
        closed = engine.close_run_reservation("crashed")
        assert closed is not None and (closed.state, closed.settled) == ("expired", D("15"))
        balance = engine.balance(ws)
        assert (balance.held, balance.remaining) == (D("0"), D("85"))
        engine.verify(ws)


def test_reservation_calls_that_are_refused(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free").id
    with pytest.raises(InsufficientCredits):
        engine.reserve_run(ws, D("100.000001"), flow_run_id="big")
    assert engine.close_run_reservation("big") is None
    with pytest.raises(InvalidInput):
        engine.hold(ws, D("1"), key="reserve:sneaky")  # the prefix is the reservation's
    held = engine.reserve_run(ws, D("10"), flow_run_id="r")
    with pytest.raises(InvalidInput):
        engine.settle(held.id, D("1"))  # a reservation is closed, never settled
    assert engine.release(held.id).state == "released"  # nothing drawn: released whole
    assert engine.balance(ws).held == D("0")
    engine.verify(ws)
