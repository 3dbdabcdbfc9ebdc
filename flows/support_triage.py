"""Support triage: while the help centre is searched for an answer (Knowledge), an LLM reads the
ticket into a ``Ticket`` (a structured Transform); a Condition then pages on-call for an urgent
ticket and queues any other, with the suggested reply attached.

Cost shape: the LLM steps dominate — Knowledge is the vector search plus the embedding and the
summarising LLM; the structured Transform is its base plus one LLM call. The help-centre snippets
shipped in ``help_centre/`` are ingested into the ``help-centre`` index (under ``SPOJIT_HOME``) the
first time the workflow runs; that ingest is billed to that run as its own node call
(``search help centre:ingest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from spojit_engine import Condition, Parallel, Response, Transform, Workflow
from spojit_engine.nodes import Knowledge
from spojit_engine.nodes.vector_index import VectorIndex

HELP_CENTRE_DIR = Path(__file__).resolve().parent / "help_centre"


class Ticket(BaseModel):
    category: Literal["billing", "bug", "how_to", "account"] = Field(
        description="What the customer needs help with."
    )
    urgent: bool = Field(description="True when work is blocked or money is at stake right now.")
    summary: str = Field(description="One line for the on-call engineer.")


def help_centre() -> dict[str, str]:
    """The shipped help-centre snippets: ``{article id: text}``."""
    return {p.stem: p.read_text().strip() for p in sorted(HELP_CENTRE_DIR.glob("*.md"))}


class HelpCentreSearch(Knowledge):
    """Knowledge over the help centre that ingests the shipped snippets on first use."""

    def call(self, value: Any, call_id: str | None = None) -> Any:
        self.question_of(value)  # a bad question is refused before anything is billed
        articles = help_centre()
        if self.index.count() < len(articles):
            self.ingest(articles)
        return super().call(value, call_id)


def brief(parts: list[Any]) -> dict[str, Any]:
    """The Parallel step's two results as one brief: the ticket and the suggested reply."""
    found, ticket = parts
    return {
        "ticket": ticket.model_dump() if isinstance(ticket, BaseModel) else ticket,
        "suggested_reply": found["answer"],
        "articles": [source["id"] for source in found["sources"]],
    }


def page(brief: dict[str, Any]) -> dict[str, Any]:
    return {"action": "page on-call", **brief}


def queue(brief: dict[str, Any]) -> dict[str, Any]:
    return {"action": f"queue for {brief['ticket']['category']}", **brief}


workflow = Workflow(
    "support_triage",
    [
        Parallel(
            "read ticket",
            [
                HelpCentreSearch("search help centre", VectorIndex("help-centre"), k=2),
                Transform(
                    "classify ticket",
                    mode="structured",
                    schema=Ticket,
                    instructions="Classify the support ticket.",
                ),
            ],
        ),
        Transform("brief", brief),
        Condition(
            "urgent?",
            lambda b: bool(b["ticket"]["urgent"]),
            then=Response("page on-call", page),
            otherwise=Response("queue", queue),
        ),
    ],
    description="Classify a support ticket, suggest a reply from the help centre, route it.",
)

sample_input = (
    "Our scheduled workflows stopped at 06:00 with 'Out of credits' although we bought a "
    "top-up yesterday. Nightly invoicing is blocked for all of our customers - please help!"
)
