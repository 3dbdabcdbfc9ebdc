"""What one call of a node costs, statically: from the prompts it would send and the price book.

Each node call is priced the way the meter prices it — the node's base price from the price book,
plus every LLM call at ``llm_cost_ucr`` with the same model price table — with prompt tokens
counted by ``litellm.token_counter`` on the messages the node would send (its ``messages_for``).

Static assumptions, each a setting: an agent's typical round trips are each tool once and then an
answer (p95 and max: ``max_round_trips``); a typical LLM answer is
``estimate_output_tokens_typical`` tokens (a structured Transform: the JSON of its schema's
example values), the most is ``max_tokens``; static p95 is the most. A value known only at run
time (a step's output) counts as ``estimate_input_tokens_unknown`` prompt tokens; Knowledge
passages as ``estimate_passage_tokens`` each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spojit_engine.estimation.plans import CallCost, Spread
from spojit_engine.estimation.shapes import (
    AgentShape,
    KnowledgeShape,
    Messages,
    NodeShape,
    StructuredShape,
    is_agent,
    is_knowledge,
    is_structured,
)
from spojit_engine.metering.core.model_prices import ModelPriceTable
from spojit_engine.metering.core.pricing import PriceBook, TokenUsage, llm_cost_ucr
from spojit_engine.settings import Settings

Values = list[Any] | None  # sample inputs a node will see, or None when known only at run time
# (calls typical, calls most), (µcr typical, µcr most) of a node's LLM calls
LlmCost = tuple[tuple[int, int], tuple[int, int]]


def mean_ceil(values: Sequence[int]) -> int:
    """The mean, rounded up: an estimate never rounds a cost away."""
    return -(-sum(values) // len(values))


def text_of(value: Any) -> str:
    """A value as the text a node sends: a string as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass
class Pricer:
    """Token counts and LLM call prices, the way ``llm.py`` and the meter compute them."""

    book: PriceBook
    prices: ModelPriceTable
    settings: Settings

    def call_ucr(self, model: str, tokens_in: int, tokens_out: int) -> int:
        usage = TokenUsage(model, tokens_in, tokens_out)
        return llm_cost_ucr(self.prices.price(model), usage, self.book.credits_per_usd)

    def tokens(self, model: str, *, messages: Messages | None = None, text: str | None = None
               ) -> int:  # fmt: skip
        from spojit_engine.llm import litellm_module

        litellm = litellm_module()
        if messages is not None:
            return int(litellm.token_counter(model=model, messages=messages))
        return int(litellm.token_counter(model=model, text=text or ""))

    def prompt_tokens(
        self, model: str, values: Values, messages_of: Callable[[Any], Messages]
    ) -> tuple[int, int]:
        """(typical, most) prompt tokens over the sample inputs; unknown input adds the setting."""
        if values is None:
            unknown = self.settings.estimate_input_tokens_unknown
            n = self.tokens(model, messages=messages_of("")) + unknown
            return n, n
        counts = [self.tokens(model, messages=messages_of(v)) for v in values]
        return mean_ceil(counts), max(counts)

    def typical_out(self, max_tokens: int) -> int:
        return min(max_tokens, self.settings.estimate_output_tokens_typical)


def static_cost(pricer: Pricer, node: NodeShape, values: Values) -> CallCost:
    """One call of ``node`` from its prompts and the price book."""
    base = pricer.book.base(node.node_type)
    calls, ucr = (0, 0), (0, 0)
    if is_agent(node):
        calls, ucr = _agent(pricer, node, values)
    elif is_structured(node):
        calls, ucr = structured_cost(pricer, node, values)
    elif is_knowledge(node):
        calls, ucr = _knowledge(pricer, node, values)
    typical_ucr, max_ucr = base + ucr[0], base + ucr[1]
    return CallCost(Spread(calls[0], calls[1], calls[1]), Spread(typical_ucr, max_ucr, max_ucr))


def _agent(pricer: Pricer, node: AgentShape, values: Values) -> LlmCost:
    typical_in, max_in = pricer.prompt_tokens(node.model, values, node.messages_for)
    exchange = pricer.settings.estimate_tool_exchange_tokens
    trips = min(len(node.tools) + 1, node.max_round_trips)
    out = pricer.typical_out(node.max_tokens)
    typical = sum(pricer.call_ucr(node.model, typical_in + k * exchange, out) for k in range(trips))
    most = sum(
        pricer.call_ucr(node.model, max_in + k * exchange, node.max_tokens)
        for k in range(node.max_round_trips)
    )
    return (trips, node.max_round_trips), (typical, most)


def structured_cost(
    pricer: Pricer, node: StructuredShape, values: Values, model: str | None = None
) -> LlmCost:
    """A structured Transform's LLM call (on ``model``, default the node's own)."""
    model = model or node.model
    typical_in, max_in = pricer.prompt_tokens(model, values, node.messages_for)
    answers = [node.answer_example(v) for v in (values or [""])]
    out = mean_ceil([pricer.tokens(model, text=a) for a in answers])
    typical = pricer.call_ucr(model, typical_in, min(out, node.max_tokens))
    return (1, 1), (typical, pricer.call_ucr(model, max_in, node.max_tokens))


def _knowledge(pricer: Pricer, node: KnowledgeShape, values: Values) -> LlmCost:
    questions = [text_of(v.get("question", v) if isinstance(v, dict) else v) for v in values or []]
    unknown = pricer.settings.estimate_input_tokens_unknown
    embedded = [pricer.tokens(node.embedding_model, text=q) for q in questions] or [unknown]
    embed_typical = pricer.call_ucr(node.embedding_model, mean_ceil(embedded), 0)
    embed_max = pricer.call_ucr(node.embedding_model, max(embedded), 0)
    passages = node.k * pricer.settings.estimate_passage_tokens

    def messages(q: Any) -> Messages:
        return node.messages_for(text_of(q))

    typical_in, max_in = pricer.prompt_tokens(node.model, questions or None, messages)
    out = pricer.typical_out(node.max_tokens)
    typical = embed_typical + pricer.call_ucr(node.model, typical_in + passages, out)
    most = embed_max + pricer.call_ucr(node.model, max_in + passages, node.max_tokens)
    return (2, 2), (typical, most)
