"""What a metered node needs at run time — the Engine, the price book, the model price table —
built once per process from the settings, or bound explicitly (``use_runtime``) by tests and by
``spojit run``. The Engine is imported lazily: the metering core must not depend on the facade.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from spojit_engine.metering.model_prices import ModelPriceTable
from spojit_engine.metering.pricing import PriceBook, load_price_book
from spojit_engine.settings import get_settings

if TYPE_CHECKING:
    from spojit_engine.engine import Engine


def _litellm_model_cost() -> dict[str, Any]:
    from spojit_engine.llm import litellm_module

    return dict(litellm_module().model_cost)


@dataclass
class Runtime:
    engine: Engine
    book: PriceBook
    prices: ModelPriceTable
    hold_ttl: timedelta
    default_workspace: str | None = None

    @classmethod
    def create(cls, engine: Engine, book: PriceBook | None = None,
               default_workspace: str | None = None) -> Runtime:  # fmt: skip
        settings = engine.settings
        book = book or load_price_book(settings.price_book)
        return cls(
            engine=engine,
            book=book,
            prices=ModelPriceTable(book, _litellm_model_cost),
            hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
            default_workspace=default_workspace,
        )


_lock = threading.Lock()
_bound: Runtime | None = None
_default: Runtime | None = None


def current_runtime() -> Runtime:
    """The bound runtime, else one built from the settings (SPOJIT_DATABASE_URL, …)."""
    global _default
    if _bound is not None:
        return _bound
    with _lock:
        if _default is None:
            import os

            from spojit_engine.engine import Engine

            _default = Runtime.create(
                Engine(settings=get_settings()),
                default_workspace=os.environ.get("SPOJIT_WORKSPACE"),
            )
        return _default


@contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Bind ``runtime`` for every node call in this process until the block ends."""
    global _bound
    previous, _bound = _bound, runtime
    try:
        yield runtime
    finally:
        _bound = previous
