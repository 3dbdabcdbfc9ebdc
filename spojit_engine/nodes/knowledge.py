"""Knowledge: answer a question from a ``VectorIndex`` — embed the question, search the index,
and have an LLM summarise the top ``k`` passages. Billed as base (the vector search, price-book
key ``knowledge``) + the embedding tokens + the summarising LLM call, each model call rounded up
on its own.

``ingest`` fills the index with the node's own embedding model (a question and its passages must
share one embedding space). Embedding is never free, so an ingest call is metered like a node
call, ``node_call("knowledge", "{name}:ingest")``: the ``knowledge`` base price (the index
write) + the embedding tokens, and a usage record of its own. Who pays is resolved as for any
node call: the run's ``spojit:workspace`` tag, else ``SPOJIT_WORKSPACE``, else the only workspace.

Bad input (an empty question, k out of 1-50, too many or too long documents) is refused before
anything is billed. With an empty index the LLM is not called: there is nothing to summarise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from spojit_engine import llm
from spojit_engine.errors import InvalidInput
from spojit_engine.metering.meter.decorator import node_call
from spojit_engine.nodes.base import Node
from spojit_engine.nodes.vector_index import (
    ADD_PASSAGES_MAX,
    Hit,
    VectorIndex,
    check_k,
    check_passages,
)

QUESTION_KEYS = ("question", "query", "text")
QUESTION_CHARS_MAX = 4_000
ANSWER_TOKENS_MAX = 16_384
INGEST_DOCUMENTS_MAX = ADD_PASSAGES_MAX
NO_PASSAGES_ANSWER = "The knowledge base has no passages to answer from."
_MOCK_SENTENCE_CHARS_MAX = 200


def prompt(instructions: str, question: str, hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """The summarising call's messages: the instructions, then the passages and the question."""
    passages = "\n\n".join(f"[{hit.id}] {hit.text}" for hit in hits)
    return [
        {"role": "system", "content": instructions},
        {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"},
    ]


def mock_summary(hits: Sequence[Hit]) -> str:
    """The offline answer: each passage's first sentence, cited by id, closest first."""
    parts = []
    for hit in hits:
        sentence = hit.text.strip().split("\n", 1)[0].split(". ", 1)[0].rstrip(".")
        parts.append(f"[{hit.id}] {sentence[:_MOCK_SENTENCE_CHARS_MAX]}.")
    return "According to the passages: " + " ".join(parts)


def document_id(text: str) -> str:
    """The id of a document given without one: a hash of its text, so re-ingesting replaces it."""
    return "doc-" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Knowledge(Node):
    family = "knowledge"

    def __init__(
        self,
        name: str,
        index: VectorIndex,
        *,
        model: str = "gpt-4o-mini",
        embedding_model: str = "text-embedding-3-small",
        k: int = 3,
        instructions: str = (
            "Answer the question using only the passages, citing passage ids in brackets. "
            "If the passages do not answer it, say so."
        ),
        max_tokens: int = 512,
        retries: int = 0,
    ) -> None:
        super().__init__(name, retries=retries)
        if not isinstance(index, VectorIndex):
            raise InvalidInput(f"Knowledge {name!r} needs a VectorIndex to search.")
        check_k(k)
        if not 1 <= max_tokens <= ANSWER_TOKENS_MAX:
            raise InvalidInput(f"Knowledge {name!r}: max_tokens must be 1-{ANSWER_TOKENS_MAX}.")
        self.index = index
        self.model = model
        self.embedding_model = embedding_model
        self.k = k
        self.instructions = instructions
        self.max_tokens = max_tokens

    def question_of(self, value: Any) -> str:
        """The question in ``value``: a string, or a dict's ``question``/``query``/``text``."""
        question = value
        if isinstance(value, Mapping):
            question = next((value[key] for key in QUESTION_KEYS if key in value), None)
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput(
                f"Knowledge {self.name!r} needs a question: a non-empty string, or a dict "
                "with a non-empty 'question', 'query' or 'text'."
            )
        if len(question) > QUESTION_CHARS_MAX:
            raise InvalidInput(
                f"Knowledge {self.name!r}: the question has {len(question)} characters; "
                f"at most {QUESTION_CHARS_MAX} are allowed."
            )
        return question.strip()

    def messages_for(self, question: str, hits: Sequence[Hit] = ()) -> list[dict[str, Any]]:
        """This node's summarising call's messages (estimates count them with no passages)."""
        return prompt(self.instructions, question, hits)

    def call(self, value: Any, call_id: str | None = None) -> Any:
        self.question_of(value)  # bad input is refused before the base price is debited
        return super().call(value, call_id)

    def run(self, value: Any) -> dict[str, Any]:
        question = self.question_of(value)
        [vector] = llm.embed(self.embedding_model, [question])
        hits = self.index.search(vector, self.k, model=self.embedding_model)
        sources = [asdict(hit) for hit in hits]
        if not hits:
            return {"answer": NO_PASSAGES_ANSWER, "sources": sources}
        response = llm.complete(
            self.model,
            self.messages_for(question, hits),
            max_tokens=self.max_tokens,
            mock_reply=mock_summary(hits),
        )
        return {"answer": response.choices[0].message.content or "", "sources": sources}

    def ingest(self, documents: Mapping[str, str] | Sequence[str]) -> int:
        """Embed ``documents`` ({id: text}, or texts whose ids are hashes of them) and add them
        to the index, at most ``INGEST_DOCUMENTS_MAX`` per call; returns how many were added."""
        if isinstance(documents, str):
            raise InvalidInput("ingest takes a list of texts or a mapping of id to text.")
        if isinstance(documents, Mapping):
            ids, texts = list(documents.keys()), list(documents.values())
        else:
            if not all(isinstance(t, str) for t in documents):
                raise InvalidInput("ingest takes a list of texts or a mapping of id to text.")
            texts = list(dict.fromkeys(documents))  # the same text twice is one document
            ids = [document_id(t) for t in texts]
        if not 1 <= len(texts) <= INGEST_DOCUMENTS_MAX:
            raise InvalidInput(
                f"One ingest takes 1-{INGEST_DOCUMENTS_MAX} documents, not {len(texts)}."
            )
        check_passages(ids, texts)  # refused before the base price and the embedding are billed
        with node_call(self.node_type, f"{self.name}:ingest"):
            vectors = llm.embed(self.embedding_model, texts)
            return self.index.add(ids, texts, vectors, model=self.embedding_model)
