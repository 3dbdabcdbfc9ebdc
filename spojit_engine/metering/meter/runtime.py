"""What a metered node needs at run time — the Engine, the price book, the model price table —
built once per process from the settings, or bound explicitly (``use_runtime``) by tests and by
``spojit run``. Metering sits below the facade and never imports it: the Engine is only seen
through ``RuntimeHost``, and the package (``spojit_engine/__init__.py``, imported first in every
process) registers how to build the process's default one (``provide_default_host``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from spojit_engine.errors import InvalidInput, UnknownWorkspace
from spojit_engine.metering.core.model_prices import ModelPriceTable
from spojit_engine.metering.core.pricing import PriceBook, load_price_book
from spojit_engine.metering.store.retry import retry_unavailable

if TYPE_CHECKING:
    from decimal import Decimal

    from sqlalchemy.engine import Engine as SAEngine

    from spojit_engine.metering.ledger.operations import Ledger
    from spojit_engine.settings import Settings


class RuntimeHost(Protocol):
    """What a run needs of the object that owns the ledger (the ``Engine``): its ledger for node
    calls, and its run reservations (a reserved run holds its estimate at start, and gives
    back the rest at its end: ``guards/runs/reserve.py``). What those hand back is not read here."""

    @property
    def ledger(self) -> Ledger: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def sa_engine(self) -> SAEngine: ...

    def reserve_run(
        self, workspace_id: str, amount: Decimal, *, flow_run_id: str, workflow: str | None = None
    ) -> object: ...

    def close_run_reservation(self, flow_run_id: str) -> object: ...

    def workspace_names(self) -> list[tuple[str, str]]:
        """(id, name) of every workspace, the oldest first."""
        ...

    def model_cost_map(self) -> dict[str, Any]:
        """LiteLLM's local price map (the one door to LiteLLM sits above metering)."""
        ...


@dataclass
class Runtime:
    engine: RuntimeHost
    book: PriceBook
    prices: ModelPriceTable
    hold_ttl: timedelta
    default_workspace: str | None = None
    # name or id -> (id, name); workspaces are never renamed or deleted, so this never goes stale
    _workspaces: dict[str, tuple[str, str]] = field(default_factory=dict)

    def workspace(self, named: str | None) -> tuple[str, str]:
        """(id, name) of the workspace a node call bills: ``named`` (a name or an id), else
        the only workspace there is."""
        if named and named in self._workspaces:
            return self._workspaces[named]
        known = retry_unavailable(self.engine.workspace_names)()  # a run's first read
        if named:
            found = next(((i, n) for i, n in known if named in (i, n)), None)
            if found is None:
                raise UnknownWorkspace(named)
            self._workspaces[named] = found
            return found
        if len(known) == 1:
            return known[0]
        raise InvalidInput(
            "This node runs for no workspace; tag the flow run spojit:workspace=NAME "
            "or set SPOJIT_WORKSPACE."
        )

    @classmethod
    def create(cls, engine: RuntimeHost, book: PriceBook | None = None,
               default_workspace: str | None = None) -> Runtime:  # fmt: skip
        settings = engine.settings
        book = book or load_price_book(settings.price_book)
        return cls(
            engine=engine,
            book=book,
            prices=ModelPriceTable(book, engine.model_cost_map),
            hold_ttl=timedelta(seconds=settings.hold_ttl_seconds),
            default_workspace=default_workspace,
        )


_lock = threading.Lock()
_bound: Runtime | None = None
_default: Runtime | None = None
_host_factory: Callable[[], RuntimeHost] | None = None


def provide_default_host(factory: Callable[[], RuntimeHost]) -> None:
    """How to build this process's host from the settings (the package registers it)."""
    global _host_factory
    _host_factory = factory


def current_runtime() -> Runtime:
    """The bound runtime, else one built from the settings (SPOJIT_DATABASE_URL, …)."""
    global _default
    if _bound is not None:
        return _bound
    with _lock:
        if _default is None:
            import os

            if _host_factory is None:
                raise RuntimeError("No runtime: import spojit_engine (its Engine) first.")
            _default = Runtime.create(
                _host_factory(), default_workspace=os.environ.get("SPOJIT_WORKSPACE")
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
