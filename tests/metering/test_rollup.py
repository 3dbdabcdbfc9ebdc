"""The daily usage rollup the breakdown and the timeline read: always equal to the entries it
sums (verify proves it), whatever day a period starts in, with each node call counted once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settable_clock import SettableClock
from sqlalchemy import update

from spojit_engine import Engine
from spojit_engine.errors import InvalidInput, LedgerCorrupt
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.reads.rollup import usage_daily
from spojit_engine.metering.store.usage import UsageRow, record_usage

_numbers = itertools.count()
START = datetime(2026, 11, 1, 10, 23, tzinfo=UTC)  # a period anchored mid-day

CLOCK_START = START  # where the ``clocked`` engine's clock starts


def test_a_node_call_is_one_call_however_many_entries_it_posts(
    clocked: tuple[Engine, SettableClock],
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
    clock = SettableClock(CLOCK_START)
    engine = Engine(database_url, clock=clock)
    try:
        name = f"ws{next(_numbers)}"
        ws = engine.create_workspace(name, plan="business", period_start=START)
        engine.grant(ws.id, Decimal("1000"), kind="topup", key=f"{name}:topup")
        first_seen: dict[int, int] = {}
        expected: dict[tuple[object, ...], list[int]] = {}
        since = START + timedelta(minutes=since_minutes)
        for i, (minutes, ucr, workflow, node_type, test_run, call) in enumerate(
            sorted(spends, key=lambda s: s[0])
        ):
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


def _record(
    engine: Engine, ws: str, key: str, *, models: str | None, ucr: int, at: datetime
) -> None:
    record_usage(
        engine.sa_engine,
        UsageRow(
            key=key, workspace_id=ws, workflow="leads", flow_run_id="run-1", task_run_id=None,
            attempt=1, node_name="t", node_type="transform", mode="structured", models=models,
            tokens_in=10, tokens_out=5, tokens_cached=0, llm_calls=1 if models else 0,
            credits_ucr=ucr, member_id=None, test_run=False, status="ok", error=None,
            created_at=at,
        ),
    )  # fmt: skip


def test_the_migration_that_installs_the_rollups_rebuilds_them_from_their_rows(
    clocked: tuple[Engine, SettableClock],
) -> None:
    """Migration 0010 carries its own frozen backfill SQL; on any ledger it must give what the
    live rules give. Rollups wiped, then 0010 run again: verify holds, the breakdown is back."""
    from alembic import command
    from alembic.config import Config

    from spojit_engine.db import MIGRATIONS_DIR, SCHEMA_REVISION, current_revision

    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START)
    member = engine.add_member(ws.id, "ana@acme.io", role="admin")
    call = Usage("leads", "transform.structured", member.id, False, node_call="node:r1:1:t:0")
    engine.ledger.debit(ws.id, amount_ucr=100, key="node:r1:1:t:0:base", usage=call)
    clock.now = START.replace(hour=23, minute=59, second=59)
    engine.ledger.debit(ws.id, amount_ucr=70, key="llm-1", usage=call)  # the same call, later
    clock.now = START + timedelta(days=1)
    engine.debit(ws.id, Decimal("1"), key="plain", workflow="digest", test_run=True)
    _record(engine, ws.id, "rec-1", models="gpt-4o", ucr=170, at=START)
    _record(engine, ws.id, "rec-2", models=None, ucr=0, at=clock.now)
    before = engine.breakdown(ws.id, by=("workflow", "test_run"))
    with engine.sa_engine.begin() as conn:
        for table in ("usage_daily", "usage_models_daily", "usage_runs"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    with pytest.raises(LedgerCorrupt):
        engine.verify(ws.id)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.sa_engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009_operations")
        command.upgrade(config, "head")
        conn.commit()
    assert current_revision(engine.sa_engine) == SCHEMA_REVISION
    assert engine.verify(ws.id) == 1
    assert engine.breakdown(ws.id, by=("workflow", "test_run")) == before


def test_the_timeline_explains_each_day_of_the_period(
    clocked: tuple[Engine, SettableClock],
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START)
    spends = [  # day offset, credits, workflow, node type
        (0, "3", "leads", "connector.agent"),
        (0, "1", "digest", "knowledge"),
        (2, "0.5", "digest", "knowledge"),
        (2, "0.25", "leads", "connector.direct"),
    ]
    for i, (offset, amount, workflow, node_type) in enumerate(spends):
        clock.now = START + timedelta(days=offset, hours=1)
        engine.debit(ws.id, Decimal(amount), key=f"d{i}", workflow=workflow, node_type=node_type)
    day0 = START + timedelta(hours=1)
    _record(engine, ws.id, "u1", models="gpt-4o", ucr=2_000_000, at=day0)
    _record(engine, ws.id, "u2", models="gpt-4.1-nano", ucr=500_000, at=day0)
    _record(engine, ws.id, "u3", models=None, ucr=9_000_000, at=day0)  # no LLM: not a model
    clock.now = START + timedelta(days=3)

    days = engine.timeline(ws.id)
    assert [d.day.day for d in days] == [1, 2, 3, 4]  # the period's first day to today
    first, empty, third = days[0], days[1], days[2]
    assert (first.credits, first.calls, first.workflow, first.workflow_credits) == (
        Decimal("4"), 2, "leads", Decimal("3"),
    )  # fmt: skip
    assert (first.node_type, first.model, first.model_credits) == (
        "connector.agent", "gpt-4o", Decimal("2"),
    )  # fmt: skip
    assert (empty.credits, empty.calls, empty.workflow, empty.model) == (Decimal(0), 0, None, None)
    assert (third.credits, third.workflow, third.node_type) == (
        Decimal("0.75"), "digest", "knowledge",
    )  # fmt: skip
    assert sum(d.credits for d in days) == engine.balance(ws.id).consumed
    assert [d.day.day for d in engine.timeline(ws.id, days=2)] == [3, 4]
    with pytest.raises(InvalidInput, match="days must be"):
        engine.timeline(ws.id, days=0)
    engine.verify(ws.id)


def test_a_spend_a_microsecond_before_midnight_stays_in_its_day(
    clocked: tuple[Engine, SettableClock],
) -> None:
    engine, clock = clocked
    anchor = datetime(2026, 11, 1, tzinfo=UTC)
    ws = engine.create_workspace("acme", plan="starter", period_start=anchor)
    clock.now = datetime(2026, 11, 1, 23, 59, 59, 999_999, tzinfo=UTC)
    engine.debit(ws.id, Decimal("1"), key="late", workflow="leads")
    clock.now = datetime(2026, 11, 2, 1, tzinfo=UTC)
    assert [(d.day.day, d.credits) for d in engine.timeline(ws.id)] == [
        (1, Decimal("1")), (2, Decimal("0")),
    ]  # fmt: skip
    assert engine.verify(ws.id) == 1  # the database puts it in the same day
