"""Model token prices: our own table, filled once per model from LiteLLM's local price map (or the
price book), so pricing a call is a dict lookup and Decimal arithmetic, not ``completion_cost``.

Lookup order for a model name: the price book's ``[models]``; LiteLLM's map under the exact name,
then without a ``provider/`` prefix; the book's ``[fallback]``; else ``UnknownModelPrice``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from spojit_engine.errors import UnknownModelPrice
from spojit_engine.metering.core.pricing import ModelPrice, PriceBook


def _usd(value: Any) -> Decimal | None:
    """LiteLLM's float prices through their shortest repr, never the float itself."""
    return None if value is None else Decimal(str(value))


class ModelPriceTable:
    def __init__(self, book: PriceBook, load_model_cost: Callable[[], dict[str, Any]]) -> None:
        """``load_model_cost`` is called once, on the first model the book does not price
        (importing LiteLLM takes seconds; nodes without an LLM never pay for it)."""
        self._book = book
        self._load_model_cost = load_model_cost
        self._model_cost: dict[str, Any] | None = None
        self._prices: dict[str, ModelPrice] = {}

    def price(self, model: str) -> ModelPrice:
        known = self._prices.get(model)
        if known is not None:
            return known
        found = self._book.models.get(model) or self._from_litellm(model) or self._book.fallback
        if found is None:
            raise UnknownModelPrice(model)
        self._prices[model] = found
        return found

    def _from_litellm(self, model: str) -> ModelPrice | None:
        if self._model_cost is None:
            self._model_cost = self._load_model_cost()
        for name in (model, model.split("/", 1)[-1]):
            entry = self._model_cost.get(name)
            if entry and entry.get("input_cost_per_token") is not None:
                return ModelPrice(
                    input_usd=_usd(entry["input_cost_per_token"]) or Decimal(0),
                    output_usd=_usd(entry.get("output_cost_per_token")) or Decimal(0),
                    cached_input_usd=_usd(entry.get("cache_read_input_token_cost")),
                )
        return None
