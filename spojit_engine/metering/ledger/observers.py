"""Who the ledger tells about what, and extra limits a spend must pass. The ledger calls these;
it never imports who registered them (the credit guards do, from ``Engine``), so the metering
core stays free of Prefect and of the guards.

- ``credits_added(workspace_id)``: after a transaction that added credits (a grant, a top-up, a
  period renewal, an upgrade) has **committed**. Observers that raise are logged and ignored: a
  listener can never undo or fail a grant that is already in the ledger.
- ``spent(workspace_id)``: after a transaction that took credits (a debit, a settle) has
  **committed**. Logged and ignored when it raises, like ``credits_added``; a listener must be
  quick (the notifications only queue the workspace for their background sender).
- ``refused(workspace_id, error, usage)``: a metered node's debit or hold was refused (the
  decorator reports it; nothing was written). Also logged and ignored when it raises.
- ``run_started(flow_run_id)`` / ``run_ended(flow_run_id)``: a workflow's flow run began, and
  ended with everything it spent committed (``nodes/workflow.py``; a hand-written flow of
  ``@metered`` functions sends neither). The notifications wait for a run's end before judging
  its cost. Logged and ignored when they raise.
- spend limits: called under the workspace's lock, inside the transaction that would admit a
  debit or hold the balance covers; one that returns an ``InsufficientCredits`` refuses the spend
  (the transaction rolls back, so it writes nothing either). A limit may write in that same
  transaction (``tx.conn``) to remember what it admitted. Its exceptions propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spojit_engine.errors import InsufficientCredits
from spojit_engine.metering.core.records import Usage

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.posting import LedgerTx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Spend:
    """A debit or hold about to be admitted, as a spend limit sees it."""

    kind: str  # "debit" or "hold"
    key: str
    amount_ucr: int
    usage: Usage


CreditsAdded = Callable[[str], None]
Spent = Callable[[str], None]
Refused = Callable[[str, InsufficientCredits, Usage], None]
SpendLimit = Callable[["LedgerTx", Spend], InsufficientCredits | None]
LimitApplies = Callable[[str, Usage], bool]
RunEvent = Callable[[str], None]


class LedgerObservers:
    def __init__(self) -> None:
        self._credits_added: list[CreditsAdded] = []
        self._spent: list[Spent] = []
        self._refused: list[Refused] = []
        self._limits: list[SpendLimit] = []
        self._applies: list[LimitApplies | None] = []
        self._run_events: dict[str, list[RunEvent]] = {"started": [], "ended": []}

    def on_credits_added(self, listener: CreditsAdded) -> None:
        self._credits_added.append(listener)

    def on_spent(self, listener: Spent) -> None:
        self._spent.append(listener)

    def on_refused(self, listener: Refused) -> None:
        self._refused.append(listener)

    def on_run(self, event: str, listener: RunEvent) -> None:
        """``event``: ``started`` or ``ended``; ``listener(flow_run_id)``."""
        self._run_events[event].append(listener)

    def run_started(self, flow_run_id: str) -> None:
        self._tell_run("started", flow_run_id)

    def run_ended(self, flow_run_id: str) -> None:
        self._tell_run("ended", flow_run_id)

    def _tell_run(self, event: str, flow_run_id: str) -> None:
        for listener in list(self._run_events[event]):
            try:
                listener(flow_run_id)
            except Exception:
                log.exception("A run-%s observer failed for flow run %s", event, flow_run_id)

    def add_spend_limit(self, limit: SpendLimit, *, applies: LimitApplies | None = None) -> None:
        """``applies(workspace_id, usage)``: a cheap answer to "could ``limit`` refuse or record
        this spend?"; a limit without one is assumed to apply to every spend."""
        self._limits.append(limit)
        self._applies.append(applies)

    def limits_apply(self, workspace_id: str, usage: Usage) -> bool:
        """Whether any spend limit must see a spend of ``usage`` (else the ledger may take its
        one-round-trip path on PostgreSQL, which cannot call them)."""
        return any(a is None or a(workspace_id, usage) for a in self._applies)

    def credits_added(self, workspace_id: str) -> None:
        for listener in list(self._credits_added):
            try:
                listener(workspace_id)
            except Exception:
                log.exception("A credits-added observer failed for workspace %s", workspace_id)

    def spent(self, workspace_id: str) -> None:
        for listener in list(self._spent):
            try:
                listener(workspace_id)
            except Exception:
                log.exception("A spent observer failed for workspace %s", workspace_id)

    def refused(self, workspace_id: str, error: InsufficientCredits, usage: Usage) -> None:
        for listener in list(self._refused):
            try:
                listener(workspace_id, error, usage)
            except Exception:
                log.exception("A refusal observer failed for workspace %s", workspace_id)

    def limit_refusal(self, tx: LedgerTx, spend: Spend) -> InsufficientCredits | None:
        """The first refusal a spend limit gives ``spend``, or None when every one allows it."""
        for limit in self._limits:
            refusal = limit(tx, spend)
            if refusal is not None:
                return refusal
        return None
