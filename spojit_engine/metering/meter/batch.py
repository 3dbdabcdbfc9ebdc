"""Group commit (TigerBeetle-style) of a run's nominal node charges against its reservation.

While a flow run has an open reservation (``reservations.py``), a node call's base price is
admitted in memory against what this process knows is left of it, the call runs, and its charge
(the debit and its usage record) waits in the run's batch. The batch commits in ONE transaction
every ``batch_calls_max`` calls, ``batch_commit_ms`` after its first waiting charge (a timer),
when the run's reservation closes, before the run's credit artifact is read, and at exit.

The bound, stated once (README "Group commit"): a charge is admitted only while
``open part of the reservation - charges admitted but not committed >= its amount``, so
- a crash never overspends: everything admitted fits in the reservation, which the ledger had
  already taken out of what is available; the sweeper voids the reservation at its ttl;
- a crash never loses a committed charge: a commit is one durable transaction (entries, postings,
  usage records together); what a crash loses is the waiting charges — at most
  ``batch_calls_max`` calls, or ``batch_commit_ms`` of them — never billed, never double-billed
  (their keys are the calls' own, so a retried commit replays);
- a charge committed after its reservation closed or timed out is paid from free credits, and
  what even they cannot pay is an overdraft (the call has run: like a late settle).
Direct operations of the run (LLM holds, a base the batch cannot admit) leave the admitted
credits in the reservation (``keep_ucr``), so they never take what the batch has promised.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from spojit_engine.metering.core.burn import spendable
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.ledger.reservations import plan_draw, post_draw, reservation_key
from spojit_engine.metering.store.statements import statements_for
from spojit_engine.metering.store.usage import UsageRow
from spojit_engine.metering.store.usage_writes import insert_rows

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger
    from spojit_engine.metering.ledger.posting import LedgerTx

log = logging.getLogger(__name__)

RUNS_MAX = 1_000  # runs whose batch this process keeps; the oldest is committed and forgotten


@dataclass(frozen=True, slots=True)
class Charge:
    """A node call's base price, admitted and waiting to commit with its usage record."""

    key: str
    amount_ucr: int
    usage: Usage
    row: UsageRow


def commit_charges(
    ledger: Ledger, workspace_id: str, flow_run_id: str, charges: Sequence[Charge]
) -> int:
    """Post ``charges`` (and their usage records) in one transaction; returns what they drew
    from the run's reservation. Keys already posted (a retried commit) are skipped."""
    with ledger.locked(workspace_id) as tx:
        posted = _posted_keys(tx, [c.key for c in charges])
        live = spendable(tx.blocks, tx.now)
        taken: dict[int, int] = {}
        drawn = 0
        for charge in charges:
            if charge.key in posted:
                continue
            draw = plan_draw(tx, flow_run_id, charge.amount_ucr)
            blocks = [
                replace(b, remaining_ucr=b.remaining_ucr - taken.get(b.id, 0))
                for b in live
                if b.remaining_ucr > taken.get(b.id, 0)
            ]
            free = sum(b.remaining_ucr for b in blocks) - tx.account.held_ucr
            budget = free - tx.account.overdraft_ucr + draw.take_ucr
            post_draw(tx, blocks, draw, key=charge.key, amount_ucr=charge.amount_ucr,
                      usage=charge.usage, budget_ucr=budget, taken=taken)  # fmt: skip
            drawn += draw.take_ucr
        insert_rows(tx.conn, [c.row for c in charges])
    return drawn


def _posted_keys(tx: LedgerTx, keys: list[str]) -> set[str]:
    names = {f"k{i}": key for i, key in enumerate(keys)}
    sql = f"SELECT key FROM entries WHERE key IN ({', '.join(':' + n for n in names)})"
    return {row[0] for row in statements_for(tx.conn).run_text(tx.conn, sql, names).fetchall()}


class RunBatch:
    """One flow run's reservation as this process sees it, and its charges not yet committed."""

    def __init__(
        self, ledger: Ledger, workspace_id: str, flow_run_id: str, open_ucr: int, *,
        calls_max: int, commit_seconds: float,
    ) -> None:  # fmt: skip
        self.ledger = ledger
        self.workspace_id = workspace_id
        self.flow_run_id = flow_run_id
        self.calls_max = calls_max
        self.commit_seconds = commit_seconds
        self._open_ucr = open_ucr  # the reservation's open part at the last commit or sync
        self._claimed_ucr = 0  # admitted here and not committed yet
        self._pending: list[Charge] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()  # one commit of this run at a time

    @property
    def claimed_ucr(self) -> int:
        """What direct operations of the run must leave in the reservation (``keep_ucr``)."""
        return self._claimed_ucr

    def admit(self, amount_ucr: int) -> bool:
        """Promise ``amount_ucr`` of the reservation to a call about to run, if it is there."""
        with self._lock:
            if self._open_ucr - self._claimed_ucr < amount_ucr:
                return False
            self._claimed_ucr += amount_ucr
            return True

    def add(self, charge: Charge) -> None:
        """Queue an admitted call's charge; commit now when the batch is full."""
        with self._lock:
            self._pending.append(charge)
            full = len(self._pending) >= self.calls_max
            if not full and self._timer is None:
                self._timer = threading.Timer(self.commit_seconds, self._commit_quietly)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self._commit_quietly()

    def commit(self) -> None:
        """Commit every waiting charge (one transaction); on failure they wait for the next."""
        with self._commit_lock:
            with self._lock:
                charges, self._pending = self._pending, []
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if not charges:
                return
            try:
                drawn = commit_charges(self.ledger, self.workspace_id, self.flow_run_id, charges)
            except BaseException:
                with self._lock:
                    self._pending[:0] = charges
                raise
            with self._lock:
                self._claimed_ucr -= sum(c.amount_ucr for c in charges)
                self._open_ucr -= drawn

    def _commit_quietly(self) -> None:
        """A commit off the calling path (full batch, timer): a failure waits for the next."""
        try:
            self.commit()
        except Exception:
            log.exception("Committing the charges of run %s failed; they stay queued.",
                          self.flow_run_id)  # fmt: skip

    def resync(self) -> None:
        """Re-read the reservation's open part after a direct operation drew from it."""
        open_ucr = self.ledger.reservation_open(reservation_key(self.flow_run_id)) or 0
        with self._lock:
            self._open_ucr = open_ucr


_batches: OrderedDict[str, RunBatch] = OrderedDict()
_batches_lock = threading.Lock()


def batch_for(
    ledger: Ledger, workspace_id: str, flow_run_id: str, *, calls_max: int, commit_seconds: float
) -> RunBatch | None:
    """The run's batch, made on first use when the run has an open reservation (one lookup per
    run and process); None for a run without one."""
    with _batches_lock:
        found = _batches.get(flow_run_id)
    if found is not None:
        return found
    open_ucr = ledger.reservation_open(reservation_key(flow_run_id))
    if open_ucr is None:
        return None
    made = RunBatch(ledger, workspace_id, flow_run_id, open_ucr, calls_max=calls_max,
                    commit_seconds=commit_seconds)  # fmt: skip
    with _batches_lock:
        made = _batches.setdefault(flow_run_id, made)
        evicted = _batches.popitem(last=False)[1] if len(_batches) > RUNS_MAX else None
    if evicted is not None:
        evicted._commit_quietly()
    return made


def commit_run(flow_run_id: str, *, forget: bool = True) -> None:
    """Commit the run's waiting charges now (its reservation closes, a report about it is
    read) and, unless ``forget`` is False, forget its batch."""
    with _batches_lock:
        batch = _batches.pop(flow_run_id, None) if forget else _batches.get(flow_run_id)
    if batch is not None:
        batch.commit()


@atexit.register
def commit_all() -> None:
    """At exit (a clean one: a killed process loses its waiting charges, as the bound says)."""
    with _batches_lock:
        batches = list(_batches.values())
        _batches.clear()
    for batch in batches:
        batch._commit_quietly()
