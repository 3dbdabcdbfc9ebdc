"""Knowledge: embed, search a real vector index (sqlite-vec, or PostgreSQL float8[]), summarise —
run in a real Prefect flow and billed to the micro-credit, recomputed here from LiteLLM's own
token counts and price map with ``Decimal``."""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest

from spojit_engine import Engine, InvalidInput
from spojit_engine.metering.core.pricing import SHIPPED_PRICE_BOOK
from spojit_engine.metering.meter.runtime import Runtime, use_runtime
from spojit_engine.metering.store.usage import UsageRow, read_usage
from spojit_engine.nodes import Knowledge, Workflow
from spojit_engine.nodes.knowledge import INGEST_DOCUMENTS_MAX, NO_PASSAGES_ANSWER, prompt
from spojit_engine.nodes.vector_index import K_MAX, PASSAGE_CHARS_MAX, Hit, VectorIndex
from spojit_engine.settings import get_settings

LLM = "gpt-4o-mini"
EMBEDDING = "text-embedding-3-small"
DOCS = {
    "refunds": "Refunds are paid back to the card within 14 days of a returned order.",
    "shipping": "Parcels ship from Ljubljana and arrive within three working days in the EU.",
    "hours": "The support desk answers email on weekdays between nine and five.",
    "invoices": "Invoices are issued in euro on the first day of each month.",
}
QUESTION = "How many days until refunds are paid back to my card?"

_BOOK = tomllib.loads(SHIPPED_PRICE_BOOK.read_text())
CREDITS_PER_USD = Decimal(_BOOK["credits_per_usd"])
BASE_UCR = int(Decimal(_BOOK["base"]["knowledge"]) * 10**6)


# -- the bill, recomputed independently -----------------------------------------------------------


def litellm() -> Any:
    import litellm as module  # LITELLM_LOCAL_MODEL_COST_MAP=True is set by conftest

    return module


def usd_per_token(model: str, kind: str) -> Decimal:
    return Decimal(str(litellm().model_cost[model][f"{kind}_cost_per_token"]))


def ucr_ceil(usd: Decimal) -> int:
    """One model call's cost in micro-credits, rounded up on its own."""
    return int((usd * CREDITS_PER_USD * 10**6).to_integral_value(ROUND_CEILING))


def embedding_bill(texts: list[str]) -> tuple[int, int]:
    tokens = sum(litellm().token_counter(model=EMBEDDING, text=t) for t in texts)
    return tokens, ucr_ceil(tokens * usd_per_token(EMBEDDING, "input"))


def summary_bill(node: Knowledge, result: dict[str, Any]) -> tuple[int, int, int]:
    hits = [Hit(**s) for s in result["sources"]]
    messages = prompt(node.instructions, QUESTION, hits)
    tokens_in = litellm().token_counter(model=LLM, messages=messages)
    tokens_out = min(node.max_tokens, litellm().token_counter(model=LLM, text=result["answer"]))
    usd = tokens_in * usd_per_token(LLM, "input") + tokens_out * usd_per_token(LLM, "output")
    return tokens_in, tokens_out, ucr_ceil(usd)


def consumed_ucr(engine: Engine, workspace_id: str) -> int:
    return int(engine.balance(workspace_id).consumed * 10**6)


def usage_of(engine: Engine, workspace_id: str, node_name: str) -> list[UsageRow]:
    return [u for u in read_usage(engine.sa_engine, workspace_id=workspace_id)
            if u.node_name == node_name]  # fmt: skip


def one_sentence(error: pytest.ExceptionInfo[InvalidInput]) -> bool:
    message = str(error.value)
    return message.endswith(".") and "\n" not in message


# -- fixtures -------------------------------------------------------------------------------------


def index_for(engine: Engine, tmp_path: Path) -> VectorIndex:
    """The index follows the ledger's database: sqlite-vec beside a SQLite ledger (in its own
    file), the float8[] table on PostgreSQL. A fresh name, since the PostgreSQL table is shared."""
    return VectorIndex(
        f"faq_{uuid.uuid4().hex[:8]}", database_url=engine.database_url, path=tmp_path / "faq.db"
    )


@pytest.fixture(params=["sqlite-vec", pytest.param("postgresql", marks=pytest.mark.postgres)])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    url = None if request.param == "sqlite-vec" else request.getfixturevalue("postgres_url")
    idx = VectorIndex(f"idx_{uuid.uuid4().hex[:8]}", database_url=url, path=tmp_path / "i.db")
    assert idx.backend.startswith(request.param)  # sqlite-vec, postgresql-float8
    yield idx
    idx.close()


@pytest.fixture
def bound(sqlite_engine: Engine) -> Iterator[Engine]:
    """Metered calls outside any flow, billed to a SQLite ledger with one workspace."""
    sqlite_engine.create_workspace("acme")
    with use_runtime(Runtime.create(sqlite_engine)):
        yield sqlite_engine


# -- the node in a real Prefect flow --------------------------------------------------------------


def test_knowledge_in_a_flow_finds_the_passage_and_bills_each_part(
    runtime: Runtime, tmp_path: Path
) -> None:
    engine = runtime.engine
    ws = engine.create_workspace(f"support-{uuid.uuid4().hex[:6]}")
    node = Knowledge("faq", index_for(engine, tmp_path), model=LLM, embedding_model=EMBEDDING, k=2)

    before = consumed_ucr(engine, ws.id)
    assert node.ingest(DOCS) == 4
    ingest_tokens, ingest_ucr = embedding_bill(list(DOCS.values()))
    assert consumed_ucr(engine, ws.id) - before == BASE_UCR + ingest_ucr
    [ingest] = usage_of(engine, ws.id, "faq:ingest")
    assert (ingest.node_type, ingest.models, ingest.tokens_in, ingest.llm_calls) == (
        "knowledge", EMBEDDING, ingest_tokens, 1
    )  # fmt: skip

    before = consumed_ucr(engine, ws.id)
    result = Workflow("support", [node]).run(QUESTION, workspace=ws.name)

    first, second = result["sources"]  # k=2
    assert (first["id"], first["text"]) == ("refunds", DOCS["refunds"])  # most words in common
    assert second["id"] != "refunds" and second["score"] < first["score"] <= 1
    assert result["answer"].startswith("According to the passages: [refunds] Refunds are paid")
    query_tokens, query_ucr = embedding_bill([QUESTION])
    tokens_in, tokens_out, summary_ucr = summary_bill(node, result)
    expected_ucr = BASE_UCR + query_ucr + summary_ucr
    assert consumed_ucr(engine, ws.id) - before == expected_ucr

    [call] = usage_of(engine, ws.id, "faq")
    assert call.workflow == "support" and call.flow_run_id and call.task_run_id
    assert (call.node_type, call.mode, call.status) == ("knowledge", None, "ok")
    assert call.models == f"{LLM},{EMBEDDING}"
    assert (call.tokens_in, call.tokens_out, call.llm_calls) == (
        query_tokens + tokens_in, tokens_out, 2
    )  # fmt: skip
    assert call.credits_ucr == expected_ucr
    assert engine.balance(ws.id).held == 0
    assert engine.verify() >= 1


def test_a_question_a_flow_cannot_ask_is_refused_before_any_debit(
    runtime: Runtime, tmp_path: Path
) -> None:
    engine = runtime.engine
    ws = engine.create_workspace(f"support-{uuid.uuid4().hex[:6]}")
    node = Knowledge("faq", index_for(engine, tmp_path))
    with pytest.raises(InvalidInput) as error:
        Workflow("support", [node]).run({"question": "   "}, workspace=ws.name)
    assert one_sentence(error) and "needs a question" in str(error.value)
    assert consumed_ucr(engine, ws.id) == 0
    assert usage_of(engine, ws.id, "faq") == []
    engine.verify()


# -- the node outside a flow (still metered) ------------------------------------------------------


def test_question_keys_and_an_empty_index(bound: Engine, tmp_path: Path) -> None:
    node = Knowledge("faq", VectorIndex("empty", path=tmp_path / "empty.db"))
    for value in (QUESTION, {"question": QUESTION}, {"query": QUESTION}, {"text": QUESTION}):
        assert node.question_of(value) == QUESTION
    result = node(QUESTION)
    assert result == {"answer": NO_PASSAGES_ANSWER, "sources": []}
    [call] = usage_of(bound, bound.workspaces()[0].id, "faq")
    # Nothing to summarise: the question was embedded, the LLM was not called.
    assert (call.models, call.llm_calls) == (EMBEDDING, 1)
    assert call.credits_ucr == BASE_UCR + embedding_bill([QUESTION])[1]


@pytest.mark.parametrize(
    "question", ["", "   ", None, 42, {"q": "refunds?"}, {"question": ""}, "x" * 4_001]
)
def test_bad_questions_are_refused_with_one_sentence_and_cost_nothing(
    bound: Engine, tmp_path: Path, question: Any
) -> None:
    node = Knowledge("faq", VectorIndex("faq", path=tmp_path / "faq.db"))
    with pytest.raises(InvalidInput) as error:
        node(question)
    assert one_sentence(error)
    ws = bound.workspaces()[0]
    assert consumed_ucr(bound, ws.id) == 0 and usage_of(bound, ws.id, "faq") == []


@pytest.mark.parametrize("k", [0, -1, K_MAX + 1, 2.5, True])
def test_k_is_bounded(tmp_path: Path, k: Any) -> None:
    index = VectorIndex("faq", path=tmp_path / "faq.db")
    with pytest.raises(InvalidInput) as error:
        Knowledge("faq", index, k=k)
    assert one_sentence(error) and f"1 to {K_MAX}" in str(error.value)
    with pytest.raises(InvalidInput):
        index.search([1.0, 0.0], k)


def test_bad_ingests_are_refused_before_anything_is_billed(bound: Engine, tmp_path: Path) -> None:
    node = Knowledge("faq", VectorIndex("faq", path=tmp_path / "faq.db"))
    too_many = [f"document number {i}" for i in range(INGEST_DOCUMENTS_MAX + 1)]
    for documents in ([], too_many, ["x" * (PASSAGE_CHARS_MAX + 1)], {"a": "  "}, {"": "text"},
                      "a single string", [b"bytes"]):  # fmt: skip
        with pytest.raises(InvalidInput) as error:
            node.ingest(documents)  # type: ignore[arg-type]
        assert one_sentence(error)
    ws = bound.workspaces()[0]
    assert consumed_ucr(bound, ws.id) == 0 and read_usage(bound.sa_engine) == []


def test_ingesting_texts_twice_replaces_them(bound: Engine, tmp_path: Path) -> None:
    index = VectorIndex("faq", path=tmp_path / "faq.db")
    node = Knowledge("faq", index)
    texts = list(DOCS.values())
    assert node.ingest([*texts, texts[0]]) == 4  # the same text twice is one document
    assert node.ingest(texts[:2]) == 2
    assert index.count() == 4
    # A reopened index keeps its passages and its space.
    reopened = VectorIndex("faq", path=tmp_path / "faq.db")
    assert (reopened.count(), reopened.dimensions) == (4, 64)


def test_the_default_index_lives_in_its_own_file_under_home() -> None:
    name = f"default_{uuid.uuid4().hex[:8]}"
    path = get_settings().home / "knowledge" / f"{name}.db"
    try:
        index = VectorIndex(name)
        assert index.backend == "sqlite-vec" and path.exists() and index.count() == 0
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- the index on both stores ---------------------------------------------------------------------


def unit(*values: float) -> list[float]:
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def test_search_ranks_by_cosine_similarity(index: VectorIndex) -> None:
    assert index.search(unit(1, 0, 0), 3) == [] and index.count() == 0
    index.add(["a", "b", "c"], ["alpha", "beta", "gamma"],
              [unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)], model="m")  # fmt: skip
    hits = index.search(unit(1, 0.2, 0), 2, model="m")
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].text == "alpha"
    assert hits[0].score == pytest.approx(1 / (1.04**0.5), abs=1e-6)
    assert hits[1].score == pytest.approx(1.2 / (2 * 1.04) ** 0.5, abs=1e-6)
    assert [h.id for h in index.search(unit(0, 0, 1), K_MAX)] == ["c", "a", "b"]  # a tie: by id
    assert (index.count(), index.dimensions) == (3, 3)


def test_add_replaces_an_id_and_ties_break_by_id(index: VectorIndex) -> None:
    index.add(["b", "a"], ["beta", "alpha"], [unit(1, 0), unit(1, 0)])
    assert [h.id for h in index.search(unit(1, 0), 2)] == ["a", "b"]
    index.add(["a"], ["alpha, moved"], [unit(0, 1)])
    hits = index.search(unit(0, 1), 2)
    assert [(h.id, h.text) for h in hits] == [("a", "alpha, moved"), ("b", "beta")]
    assert index.count() == 2


def test_the_first_vectors_fix_the_space(index: VectorIndex) -> None:
    index.add(["a"], ["alpha"], [unit(1, 0, 0)], model="m")
    refused = [
        lambda: index.add(["b"], ["beta"], [unit(1, 0)]),
        lambda: index.add(["b"], ["beta"], [unit(1, 0, 0)], model="other"),
        lambda: index.search(unit(1, 0), 1),
        lambda: index.search(unit(1, 0, 0), 1, model="other"),
        lambda: index.search([0.0, 0.0, 0.0], 1),
        lambda: index.search([float("nan"), 1.0, 0.0], 1),
        lambda: index.add(["b", "b"], ["beta", "beta"], [unit(1, 0, 0)] * 2),
        lambda: index.add(["b", "c"], ["beta", "gamma"], [unit(1, 0, 0), unit(1, 0)]),
        lambda: index.add(["b"], ["beta", "gamma"], [unit(1, 0, 0)]),
    ]
    for call in refused:
        with pytest.raises(InvalidInput) as error:
            call()
        assert one_sentence(error)
    assert index.count() == 1 and index.dimensions == 3
