"""Pricing math and the price book. Pure: no LiteLLM, no database (the LiteLLM price table is
``model_prices.py``; it hands this module plain ``ModelPrice`` values).

A node call costs ``base[node_type]``; each LLM call adds
``usd_to_ucr_ceil(cost_usd, credits_per_usd)`` where
``cost_usd = uncached_in x input + cached_in x cached_input + out x output`` (all ``Decimal``).
A hold reserves the most a call can cost: every prompt token uncached plus ``max_tokens`` out.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from spojit_engine.errors import InvalidInput
from spojit_engine.money import credits_to_ucr_exact, usd_to_ucr_ceil

SHIPPED_PRICE_BOOK = Path(__file__).with_name("prices.toml")
NODE_TYPES = (
    "connector.direct", "connector.agent", "transform.map", "transform.structured", "knowledge",
    "condition", "loop", "parallel", "trigger", "response", "variable",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token; ``cached_input`` None means cached prompt tokens cost the full input price."""

    input_usd: Decimal
    output_usd: Decimal
    cached_input_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    model: str
    tokens_in: int
    tokens_out: int
    tokens_cached: int = 0


@dataclass(frozen=True)
class PriceBook:
    credits_per_usd: Decimal
    base_ucr: dict[str, int]
    models: dict[str, ModelPrice] = field(default_factory=dict)
    fallback: ModelPrice | None = None
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    def base(self, node_type: str) -> int:
        try:
            return self.base_ucr[node_type]
        except KeyError:
            raise InvalidInput(
                f"No base price for node type {node_type!r}; the price book knows "
                f"{', '.join(sorted(self.base_ucr))}."
            ) from None

    def for_workspace(self, workspace_name: str) -> PriceBook:
        """This book with the workspace's ``[workspaces.NAME]`` overrides applied."""
        override = self.workspaces.get(workspace_name)
        return self if not override else _parse(override, parent=self)


def llm_cost_ucr(price: ModelPrice, usage: TokenUsage, credits_per_usd: Decimal) -> int:
    """What one LLM call costs, rounded up to the micro-credit."""
    cached = min(usage.tokens_cached, usage.tokens_in)
    cached_price = price.input_usd if price.cached_input_usd is None else price.cached_input_usd
    usd = (
        (usage.tokens_in - cached) * price.input_usd
        + cached * cached_price
        + usage.tokens_out * price.output_usd
    )
    return usd_to_ucr_ceil(usd, credits_per_usd)


def max_cost_ucr(
    price: ModelPrice, prompt_tokens: int, max_tokens: int, credits_per_usd: Decimal
) -> int:
    """The most a call can cost: what its hold reserves."""
    return llm_cost_ucr(price, TokenUsage("", prompt_tokens, max_tokens), credits_per_usd)


def _model_price(raw: dict[str, Any]) -> ModelPrice:
    cached = raw.get("cached_input_usd_per_token")
    return ModelPrice(
        input_usd=Decimal(str(raw["input_usd_per_token"])),
        output_usd=Decimal(str(raw["output_usd_per_token"])),
        cached_input_usd=None if cached is None else Decimal(str(cached)),
    )


def _parse(raw: dict[str, Any], parent: PriceBook | None = None) -> PriceBook:
    base = dict(parent.base_ucr) if parent else {}
    base.update(
        {
            k: credits_to_ucr_exact(Decimal(str(v)), allow_zero=True)
            for k, v in raw.get("base", {}).items()
        }
    )
    models = dict(parent.models) if parent else {}
    models.update({k: _model_price(v) for k, v in raw.get("models", {}).items()})
    fallback = (
        _model_price(raw["fallback"])
        if "fallback" in raw
        else (parent.fallback if parent else None)
    )
    cpu = raw.get("credits_per_usd", parent.credits_per_usd if parent else None)
    if cpu is None:
        raise InvalidInput("The price book must set credits_per_usd.")
    return PriceBook(
        credits_per_usd=Decimal(str(cpu)),
        base_ucr=base,
        models=models,
        fallback=fallback,
        workspaces=raw.get("workspaces", parent.workspaces if parent else {}),
    )


@lru_cache(maxsize=8)
def load_price_book(override: Path | None = None) -> PriceBook:
    """The shipped book, with ``override`` (SPOJIT_PRICE_BOOK) laid over it."""
    book = _parse(tomllib.loads(SHIPPED_PRICE_BOOK.read_text()))
    if override is None:
        return book
    try:
        raw = tomllib.loads(Path(override).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"Cannot read the price book {override}: {exc}.") from None
    return _parse(raw, parent=book)
