"""Executions: runs sorted by start and paged with an offset, a run's nodes, member scoping,
and the run name and trigger each usage record carries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spojit_engine import Engine
from spojit_engine.errors import InvalidInput, UnknownExecution
from spojit_engine.metering.reads.executions import group_nodes, group_runs
from spojit_engine.metering.store.usage import UsageRow, record_usage

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def row(run: str, node: str, *, at: int, credits_ucr: int = 1_000_000, **more: object) -> UsageRow:
    base = UsageRow(
        key=f"{run}/{node}/{at}",
        workspace_id="ws_x",
        workflow="leads",
        flow_run_id=run,
        task_run_id=f"{run}-{node}-{at}",
        attempt=1,
        node_name=node,
        node_type="connector",
        mode="agent",
        models="gpt-4o-mini",
        tokens_in=100,
        tokens_out=20,
        tokens_cached=0,
        llm_calls=1,
        credits_ucr=credits_ucr,
        member_id=None,
        test_run=False,
        status="ok",
        error=None,
        created_at=T0 + timedelta(seconds=at),
        run_name=f"name-of-{run}",
        trigger="schedule",
    )
    return replace(base, **more)  # type: ignore[arg-type]


def test_runs_are_sorted_by_start_and_carry_name_and_trigger() -> None:
    # "late" started last but "early" finished last: start decides the order.
    rows = [row("early", "a", at=0), row("late", "a", at=5), row("early", "b", at=9)]
    runs = group_runs(rows)
    assert [r.flow_run_id for r in runs] == ["late", "early"]
    assert runs[1].started_at == T0 and runs[1].finished_at == T0 + timedelta(seconds=9)
    assert (runs[1].run_name, runs[1].trigger) == ("name-of-early", "schedule")


def test_a_run_s_nodes_sum_its_calls_and_a_retry_that_succeeded_is_ok() -> None:
    rows = [
        row("r", "lookup", at=0, status="failed", error="Boom", task_run_id="t1"),
        row("r", "lookup", at=1, attempt=2, task_run_id="t1", models="gpt-4o"),
        row("r", "extract", at=2, mode="structured", node_type="transform", tokens_in=7),
    ]
    lookup, extract = group_nodes(rows)
    assert (lookup.node_name, lookup.node_type, lookup.calls) == ("lookup", "connector.agent", 2)
    assert lookup.status == "ok" and lookup.models == ("gpt-4o", "gpt-4o-mini")
    assert (lookup.tokens_in, lookup.tokens_out, lookup.llm_calls) == (200, 40, 2)
    assert (extract.node_type, extract.tokens_in) == ("transform.structured", 7)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["r1", "r2", "r3"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=0, max_value=10**9),
            st.sampled_from(["ok", "failed", "refused"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_node_credits_add_up_to_their_run_s_credits(
    calls: list[tuple[str, str, int, str]],
) -> None:
    rows = [
        row(run, node, at=i, credits_ucr=ucr, status=status)
        for i, (run, node, ucr, status) in enumerate(calls)
    ]
    for run in group_runs(rows):
        nodes = group_nodes([r for r in rows if r.flow_run_id == run.flow_run_id])
        assert sum(n.credits_ucr for n in nodes) == run.credits_ucr
        assert sum(n.calls for n in nodes) == run.node_calls
    starts = [r.started_at for r in group_runs(rows)]
    assert starts == sorted(starts, reverse=True)


def _seed(engine: Engine) -> tuple[str, str, str]:
    ws = engine.create_workspace("acme", plan="starter")
    admin = engine.add_member(ws.id, "ana@acme.io", role="admin")
    bob = engine.add_member(ws.id, "bob@acme.io")
    for i in range(5):
        who = bob.id if i % 2 else admin.id
        for node in ("lookup", "extract"):
            record_usage(
                engine.sa_engine,
                row(f"run-{i}", node, at=10 * i + len(node), workspace_id=ws.id, member_id=who),
            )
    return ws.id, admin.id, bob.id


def test_executions_page_with_an_offset_newest_start_first(engine: Engine) -> None:
    ws, _, bob = _seed(engine)
    pages = [engine.executions(ws, limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [[r.flow_run_id for r in p] for p in pages] == [
        ["run-4", "run-3"], ["run-2", "run-1"], ["run-0"], [],
    ]  # fmt: skip
    first = pages[0][0]
    assert (first.run_name, first.trigger, first.credits) == ("name-of-run-4", "schedule", 2)
    own = engine.executions(ws, member_id=bob, limit=10)
    assert [r.flow_run_id for r in own] == ["run-3", "run-1"]
    with pytest.raises(InvalidInput, match="offset"):
        engine.executions(ws, offset=-1)


def test_one_run_s_detail_and_a_member_sees_only_their_own(engine: Engine) -> None:
    ws, admin, bob = _seed(engine)
    detail = engine.execution(ws, "run-3")
    assert detail.run.member_id == bob
    assert [n.name for n in detail.nodes] == ["lookup", "extract"]
    assert sum(n.credits for n in detail.nodes) == detail.run.credits == Decimal(2)
    assert detail.nodes[0].models == ("gpt-4o-mini",) and detail.nodes[0].tokens_out == 20
    assert engine.execution(ws, "run-3", member_id=bob).run.flow_run_id == "run-3"
    with pytest.raises(UnknownExecution):
        engine.execution(ws, "run-3", member_id=admin)  # not theirs: as if it did not exist
    with pytest.raises(UnknownExecution):
        engine.execution(ws, "no-such-run")
