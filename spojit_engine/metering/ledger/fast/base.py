"""What the fast debits share (``pg_debit.py``, ``sqlite_debit.py``): the request, the count of
debits they answered, and the sessions they keep for themselves.

A fast debit answers only the common case of ``Ledger.debit`` and returns None for every other
(due, refused, a used key…), having written nothing; the Python path then decides it as always.

Checking a connection out of SQLAlchemy's pool and resetting it on return costs ≈ 80 µs of
Python a transaction, more than a debit's own statements. So the one-call paths (``pg_debit.py``,
``sqlite_debit.py``) keep at most ``most`` sessions of their own, made by the engine exactly as
its pool makes them (same connect arguments and pragmas), then detached from the pool. A session
is used by one thread at a time; when all are busy, ``take`` answers None and the caller takes
the ordinary path. A lost session is dropped. Disposing the engine (closed, or its sessions known
dead) closes the idle ones.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import POOL_SIZE
from spojit_engine.metering.core.records import EntryRecord, Usage
from spojit_engine.metering.store.usage import UsageRow

S = TypeVar("S")
SESSIONS_MAX = POOL_SIZE  # a fast debit's own sessions, per engine


@dataclass(frozen=True, slots=True)
class DebitRequest:
    """``Ledger.debit``'s arguments, its clock read once."""

    workspace_id: str
    key: str
    amount_ucr: int
    now: datetime
    usage: Usage
    run_id: str | None  # the flow run whose open reservation pays first
    keep_ucr: int  # of that reservation, left for charges not yet committed
    records: Sequence[UsageRow]  # usage records written in the same transaction


class FastDebit(ABC):
    """A debit path for the common case over sessions of its own."""

    def __init__(self, engine: SAEngine) -> None:
        self.engine = engine
        self.answered = 0  # debits this path posted (tests and benches read it)
        self.sessions: OwnSessions[Any] = OwnSessions(
            engine, make=self._open_session, close=lambda conn: conn.close(), most=SESSIONS_MAX
        )

    @abstractmethod
    def debit(self, request: DebitRequest) -> EntryRecord | None:
        """The posted entry, or None when the Python path must decide (nothing was written)."""

    @abstractmethod
    def _open_session(self) -> Any:
        """A new session, made by the engine as for its pool, then detached from it."""


class OwnSessions(Generic[S]):
    """At most ``most`` sessions: ``make`` opens one (detached from the engine's pool),
    ``close`` closes one."""

    def __init__(
        self, engine: SAEngine, *, make: Callable[[], S], close: Callable[[S], None], most: int
    ) -> None:
        self._make = make
        self._close = close
        self._most = most
        self.idle: list[S] = []
        self._open = 0  # ours, idle or in use
        self._lock = threading.Lock()
        event.listen(engine, "engine_disposed", self._close_idle)

    def take(self) -> S | None:
        """An idle session, else a new one, else None when ``most`` are in use."""
        with self._lock:
            if self.idle:
                return self.idle.pop()
            if self._open >= self._most:
                return None
            self._open += 1
        try:
            return self._make()
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def give_back(self, session: S, *, keep: bool) -> None:
        """Keep ``session`` for the next caller, or close it (``keep`` False: it was lost)."""
        with self._lock:
            if keep:
                self.idle.append(session)
                return
            self._open -= 1
        self._close(session)

    def _close_idle(self, _engine: SAEngine) -> None:
        with self._lock:
            idle, self.idle = self.idle, []
            self._open -= len(idle)
        for session in idle:
            self._close(session)
