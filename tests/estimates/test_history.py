"""History and history-only advice on both databases (a SQLite file and the real PostgreSQL):
usage records in, measured estimates and advice out. No Prefect: records are written directly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from spojit_engine import Engine
from spojit_engine.estimation.history import read_history, workflows_with_history
from spojit_engine.metering.store.usage import UsageRow, record_usage
from spojit_engine.nodes import Connector, Loop, Workflow


def lookup(domain: str) -> dict[str, str]:
    """Look up a company by its domain."""
    return {"domain": domain}


def contact(company: str) -> dict[str, str]:
    """Find a contact at a company."""
    return {"company": company}


def record(engine: Engine, ws: str, run: int, n: int, node: str, node_type: str, *,
           credits_ucr: int, llm_calls: int = 0, tools: str | None = None,
           test_run: bool = False) -> None:  # fmt: skip
    family, _, mode = node_type.partition(".")
    record_usage(
        engine.sa_engine,
        UsageRow(
            key=f"k:{run}:{node}:{n}", workspace_id=ws, workflow="leads",
            flow_run_id=f"00000000-0000-0000-0000-{run:012d}", task_run_id=None, attempt=1,
            node_name=node, node_type=family, mode=mode or None, models="gpt-4o-mini",
            tokens_in=100, tokens_out=20, tokens_cached=0, llm_calls=llm_calls,
            credits_ucr=credits_ucr, member_id=None, test_run=test_run, status="ok", error=None,
            created_at=datetime.now(UTC), tools=tools,
        ),
    )  # fmt: skip


def test_history_measures_nodes_and_the_loop_size_and_advises_direct_mode(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter").id
    for run in range(4):  # four live runs of a loop over 5 items; the agent always picks lookup
        record(engine, ws, run, 0, "each", "loop", credits_ucr=10_000)
        for n in range(5):
            cost = 1_002_000 + 1000 * n
            record(engine, ws, run, n, "agent", "connector.agent", credits_ucr=cost,
                   llm_calls=2, tools="lookup")  # fmt: skip

    history = read_history(engine.sa_engine, workspace_id=ws, workflow="leads", limit=1000)
    assert history.node("agent") is not None and history.node("agent").calls == 20  # type: ignore[union-attr]
    assert workflows_with_history(engine.sa_engine, workspace_id=ws, limit=10) == ["leads"]

    workflow = Workflow(
        "leads", [Loop("each", Connector("agent", mode="agent", tools=[lookup, contact]))]
    )
    est = engine.estimate(ws, workflow)  # no input: the loop's size comes from history
    loop_row, agent_row = est.nodes
    assert (loop_row.source, agent_row.source, agent_row.runs) == ("measured", "measured", 5)
    assert est.total.llm_calls.typical == 5 * 2
    assert agent_row.credits.typical == 5 * Decimal("1.004")  # p50 of 1.002 … 1.006
    assert agent_row.credits.p95 == 5 * Decimal("1.006")

    [advice] = engine.advice(ws, "leads")
    assert advice.kind == "direct_mode" and "lookup" in advice.message
    assert advice.saves_per_run == 5 * (Decimal("1.004") - Decimal("1"))  # agent p50 - direct
    assert [a.kind for a in engine.advice(ws)] == ["direct_mode"]


def test_no_history_no_advice(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter").id
    assert engine.advice(ws) == [] and engine.advice(ws, "leads") == []
