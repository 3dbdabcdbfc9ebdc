"""Every path that writes entries or usage records keeps the rollups exact (the database's
triggers, migration 0010): PostgreSQL's one-call debit with its records, a settle that counts an
LLM call on a record, a rewritten record, group commit of a reserved run, and ``record_usage``.
``verify`` accepts the rollups, and the card's consumed (read from the rollup, by the full path
and by the bare-driver reader) equals the usage entries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from settable_clock import SettableClock
from sqlalchemy import func, select

from spojit_engine import Engine
from spojit_engine.db import write_transaction
from spojit_engine.metering.core.records import USAGE_KINDS, Usage
from spojit_engine.metering.meter.batch import Charge, batch_for
from spojit_engine.metering.reads.quick_read import quick_balance
from spojit_engine.metering.reads.rollup import usage_models_daily, usage_runs
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.usage import UsageRow, record_usage
from spojit_engine.metering.store.usage_writes import add_llm_call, rewrite_row
from spojit_engine.money import ucr_to_credits

START = datetime(2026, 11, 1, 10, 23, 17, tzinfo=UTC)  # a period anchored mid-day
RUN = "7c0c5a39-1f0e-4b6e-9d7a-000000000001"

CLOCK_START = START  # where the ``clocked`` engine's clock starts


def _row(key: str, ws: str, at: datetime, credits_ucr: int, **values: object) -> UsageRow:
    fields: dict[str, object] = {
        "key": key, "workspace_id": ws, "workflow": "leads", "flow_run_id": RUN,
        "task_run_id": None, "attempt": 1, "node_name": "shape", "node_type": "transform.map",
        "mode": "map", "models": None, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0,
        "llm_calls": 0, "credits_ucr": credits_ucr, "member_id": "m1", "test_run": False,
        "status": "ok", "error": None, "created_at": at,
    }  # fmt: skip
    fields.update(values)
    return UsageRow(**fields)  # type: ignore[arg-type]


def _usage_entries_ucr(engine: Engine, ws: str) -> int:
    e = schema.entries.c
    query = select(func.coalesce(-func.sum(e.amount_ucr), 0)).where(
        e.workspace_id == ws, e.kind.in_(USAGE_KINDS)
    )
    with engine.sa_engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_every_write_path_keeps_the_rollups_exact(
    clocked: tuple[Engine, SettableClock], database_url: str
) -> None:
    engine, clock = clocked
    ws = engine.create_workspace("acme", plan="starter", period_start=START).id
    ledger = engine.ledger
    clock.now = START + timedelta(hours=13, minutes=36, seconds=42)  # 23:59:59, the day's last

    # A node call's base debit with its record: the fast path (one server-side call on PostgreSQL).
    answered = ledger.fast_debit.answered
    call = Usage("leads", "transform.structured", "m1", False, node_call="node:a")
    first = _row("node:a", ws, clock.now, 100_000, node_type="transform.structured")
    ledger.debit(ws, amount_ucr=100_000, key="node:a:base", usage=call, records=[first])
    assert ledger.fast_debit.answered == answered + 1

    # Past the reset time: the same call settles an LLM call counted on its record (credits
    # and models change), then the record is rewritten (its status and credits change).
    clock.now = START + timedelta(days=1, seconds=1)
    hold = ledger.hold(ws, amount_ucr=900_000, key="llm-1", ttl=timedelta(hours=1), usage=call)

    def count_llm_call(tx: object) -> None:
        add_llm_call(tx.conn, "node:a", tokens_in=10, tokens_out=5, tokens_cached=0,  # type: ignore[attr-defined]
                     cost_ucr=250_000, models="gpt-4o-mini")  # fmt: skip

    ledger.settle(hold.id, actual_ucr=250_000, then=count_llm_call)
    with write_transaction(engine.sa_engine) as conn:
        rewrite_row(conn, replace(first, credits_ucr=350_000, models="gpt-4o-mini",
                                  llm_calls=1, status="error", error="boom"))  # fmt: skip

    # A reserved run's charges committed in batches (group commit), records riding along.
    engine.reserve_run(ws, Decimal("10"), flow_run_id=RUN)
    batch = batch_for(ledger, ws, RUN, calls_max=3, commit_seconds=3600)
    assert batch is not None
    for i in range(5):
        clock.now += timedelta(minutes=1)
        assert batch.admit(100_000)
        row = _row(f"node:b{i}", ws, clock.now, 100_000, member_id=None if i % 2 else "m2")
        batch.add(Charge(f"node:b{i}:base", 100_000, Usage("leads", "transform.map"), row))
    engine.close_run_reservation(RUN)

    # A record written on its own (a replay writes nothing).
    lone = _row("node:c", ws, START + timedelta(days=2), 0, flow_run_id="other-run")
    assert record_usage(engine.sa_engine, lone)
    assert not record_usage(engine.sa_engine, lone)

    assert engine.verify(ws) >= 1
    consumed = ucr_to_credits(_usage_entries_ucr(engine, ws))
    assert consumed == Decimal("0.85")  # 0.1 + 0.25 + 5 x 0.1
    assert engine.balance(ws).consumed == consumed
    quick = quick_balance(database_url, ws, clock.now)
    assert quick is not None and ucr_to_credits(quick.consumed_ucr) == consumed

    m, r = usage_models_daily.c, usage_runs.c
    with engine.sa_engine.connect() as conn:
        models = conn.execute(
            select(m.day, m.models, m.credits_ucr, m.calls).where(
                m.workspace_id == ws, m.member_id == "m1"
            )
        ).all()
        runs = conn.execute(
            select(r.member_id, r.started_at).where(r.workspace_id == ws, r.flow_run_id == RUN)
        ).all()
    # The record moved from "no model" to its model on the day it was first written (no empty
    # row left behind); the lone record is a day of its own.
    day = START.date()
    assert sorted(models) == [(day, "gpt-4o-mini", 350_000, 1), (day + timedelta(days=2), "", 0, 1)]
    assert {member: started for member, started in runs} == {
        "": START + timedelta(hours=13, minutes=36, seconds=42),
        "m1": START + timedelta(hours=13, minutes=36, seconds=42),
        "m2": START + timedelta(days=1, seconds=1, minutes=1),
    }
