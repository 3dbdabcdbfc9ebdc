"""The daily usage rollup the breakdown and the timeline read: always equal to the entries it
sums (verify proves it), whatever day a period starts in, with each node call counted once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from spojit_engine import Engine
from spojit_engine.errors import LedgerCorrupt
from spojit_engine.metering.records import Usage
from spojit_engine.metering.rollup import usage_daily

_numbers = itertools.count()
START = datetime(2026, 11, 1, 10, 23, tzinfo=UTC)  # a period anchored mid-day


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(database_url: str) -> Iterator[tuple[Engine, Clock]]:
    clock = Clock()
    eng = Engine(database_url, clock=clock)
    yield eng, clock
    eng.close()


def test_a_node_call_is_one_call_however_many_entries_it_posts(
    clocked: tuple[Engine, Clock],
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START)
    call = Usage("leads", "transform.structured", None, False, node_call="node:r1:1:t:0")
    engine.ledger.debit(ws.id, amount_ucr=100, key="node:r1:1:t:0:base", usage=call)
    hold = engine.ledger.hold(
        ws.id, amount_ucr=900, key="llm-1", ttl=timedelta(hours=1), usage=call
    )
    clock.now = START.replace(hour=23, minute=59, second=59)
    engine.ledger.settle(hold.id, actual_ucr=250)
    clock.now = START + timedelta(days=1)  # the same node call goes on past midnight
    engine.ledger.debit(ws.id, amount_ucr=50, key="llm-2", usage=call)
    engine.debit(
        ws.id, Decimal("1"), key="plain", workflow="leads", node_type="transform.structured"
    )
    (row,) = engine.breakdown(ws.id, by=("workflow", "node_type"))
    assert (row.credits, row.calls) == (Decimal("1.0004"), 2)
    by_day = engine.breakdown(ws.id, by=("workflow",), since=START + timedelta(days=1))
    assert [(r.credits, r.calls) for r in by_day] == [(Decimal("1.00005"), 1)]
    assert engine.verify(ws.id) == 1


def test_verify_names_a_rollup_that_differs_from_the_entries(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter")
    engine.debit(ws.id, Decimal("2"), key="d1", workflow="leads")
    engine.verify(ws.id)
    with engine.sa_engine.begin() as conn:
        conn.execute(update(usage_daily).values(credits_ucr=usage_daily.c.credits_ucr + 1))
    with pytest.raises(LedgerCorrupt, match="usage_daily"):
        engine.verify(ws.id)


spends = st.lists(
    st.tuples(
        st.integers(0, 4 * 24 * 60),  # minutes after START
        st.integers(1, 5_000_000),  # µcr
        st.sampled_from(["leads", "digest", None]),
        st.sampled_from(["connector.direct", "knowledge"]),
        st.booleans(),  # test run
        st.integers(0, 3),  # node call (0: none)
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spends=spends, since_minutes=st.integers(0, 4 * 24 * 60))
def test_the_breakdown_from_the_rollup_equals_one_from_the_entries(
    database_url: str, spends: list[tuple[int, int, str | None, str, bool, int]], since_minutes: int
) -> None:
    """Spends at random minutes over four days, read from a random ``since``: the rollup path
    gives what summing the entries themselves gives (a call counted at its first entry)."""
    clock = Clock()
    engine = Engine(database_url, clock=clock)
    try:
        name = f"ws{next(_numbers)}"
        ws = engine.create_workspace(name, plan="business", period_start=START)
        engine.grant(ws.id, Decimal("1000"), kind="topup", key=f"{name}:topup")
        first_seen: dict[int, int] = {}
        expected: dict[tuple[object, ...], list[int]] = {}
        since = START + timedelta(minutes=since_minutes)
        for i, (minutes, ucr, workflow, node_type, test_run, call) in enumerate(sorted(spends)):
            clock.now = START + timedelta(minutes=minutes)
            node_call = f"{name}:call:{call}" if call else None
            usage = Usage(workflow, node_type, None, test_run, node_call=node_call)
            engine.ledger.debit(ws.id, amount_ucr=ucr, key=f"{name}:{i}", usage=usage)
            opens = call == 0 or first_seen.setdefault(call, i) == i
            if clock.now >= since:
                row = expected.setdefault((workflow, test_run), [0, 0])
                row[0] += ucr
                row[1] += opens
        rows = engine.breakdown(ws.id, by=("workflow",), since=since)
        got = {(r.workflow, r.test_run): [int(r.credits * 1_000_000), r.calls] for r in rows}
        assert got == expected
        engine.verify(ws.id)
    finally:
        engine.close()
