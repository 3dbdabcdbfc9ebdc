"""The notifier: hears the ledger's committed spends, grants and refusals (and, through the
``Engine``, the credit guard's pauses and resumes), and does everything
else on one background thread — so a run never waits for it and a dead receiver never fails a
run. The observer only adds the workspace to a bounded set (``notify_queue_max``; beyond it a
poke is dropped: the next one re-evaluates everything anyway). The thread evaluates the rules
(evaluate.py), then delivers what is due from the outbox (any process's, so rows a process left
pending are sent by the next one), retrying with backoff."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from spojit_engine.db import write_transaction
from spojit_engine.notify.decide import StopOf
from spojit_engine.notify.deliver import DeliveryFailed, deliver
from spojit_engine.notify.evaluate import evaluate_workspace, workspaces_of_runs
from spojit_engine.notify.outbox import OutboxRow, claim_due, mark_failed, mark_sent
from spojit_engine.notify.rules import RuleRecord, list_rules

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger
    from spojit_engine.settings import Settings

log = logging.getLogger(__name__)


class Notifier:
    """Watches one ledger through its observers (the ledger never imports it), like the guard;
    the ``Engine`` builds one per ledger."""

    def __init__(self, ledger: Ledger, settings: Settings, stop_of: StopOf | None = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self.stop_of = stop_of  # whether the credit guard paused a workspace (from the Engine)
        self.sa = ledger.engine
        self.clock = ledger.clock
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._work = threading.Lock()  # one evaluate/deliver pass at a time in this process
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._rules: dict[str, tuple[float, list[RuleRecord]]] = {}
        self._retrying = False  # a delivery failed here and waits for its backoff
        observers = ledger.observers
        observers.on_spent(self.poke)
        observers.on_credits_added(self.poke)
        observers.on_refused(lambda workspace_id, _error, _usage: self.poke(workspace_id))
        # A workflow's runs in progress here: a run's own rules judge it once it has ended.
        self._running: set[str] = set()
        self._ended: set[str] = set()
        observers.on_run("started", self._run_started)
        observers.on_run("ended", self._run_ended)

    def _run_started(self, flow_run_id: str) -> None:
        with self._cond:
            self._running.add(flow_run_id)

    def _run_ended(self, flow_run_id: str) -> None:
        """Its cost is final: queue its workspace (found by the sender thread) for evaluation.
        When no workspace this process billed has a rule, there is nothing to judge (the run's
        spends poked its workspace, so its rules are in the cache if it has any)."""
        with self._cond:
            self._running.discard(flow_run_id)
            if not self._retrying and not any(rules for _, rules in self._rules.values()):
                return
            if len(self._ended) < self.settings.notify_queue_max:
                self._ended.add(flow_run_id)
        self._wake()

    def poke(self, workspace_id: str) -> None:
        """Queue ``workspace_id`` for evaluation (O(1), no I/O: called on the run's path). A
        workspace this process knows has no rules is not queued: its pass would do nothing, and
        waking the thread for every debit cost more client CPU than the debit's own database
        call (~90 µs, bench/ledger.py)."""
        if self._cached_rules(workspace_id) == [] and not self._retrying:
            return
        with self._cond:
            if len(self._pending) < self.settings.notify_queue_max:
                self._pending.add(workspace_id)
        self._wake()

    def _wake(self) -> None:
        """Start the sender thread if it is not running, and wake it."""
        with self._cond:
            if self._stopping:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="spojit-notify", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def rules(self, workspace_id: str) -> list[RuleRecord]:
        """The workspace's rules, cached for ``notify_rules_cache_seconds``."""
        cached = self._cached_rules(workspace_id)
        if cached is not None:
            return cached
        found = list_rules(self.sa, workspace_id)
        self._rules[workspace_id] = (time.monotonic(), found)
        return found

    def _cached_rules(self, workspace_id: str) -> list[RuleRecord] | None:
        """The cached rules while fresh, else None."""
        cached = self._rules.get(workspace_id)
        if (
            cached is None
            or time.monotonic() - cached[0] >= self.settings.notify_rules_cache_seconds
        ):
            return None
        return cached[1]

    def forget_rules(self, workspace_id: str) -> None:
        self._rules.pop(workspace_id, None)

    def flush(self) -> None:
        """Evaluate what is queued and deliver what is due, now, in this thread."""
        with self._cond:
            batch, self._pending = self._pending, set()
            ended, self._ended = self._ended, set()
            running = frozenset(self._running)
        with self._work:
            active = self._retrying
            for workspace_id in batch | workspaces_of_runs(self.sa, ended):
                rules = self.rules(workspace_id)
                if rules:
                    active = True
                    evaluate_workspace(self.ledger, rules, self.clock(), self.stop_of, running)
            if active:
                self.deliver_due()

    def deliver_due(self) -> int:
        """Deliver the outbox rows due now (this process wins each by compare-and-set)."""
        s = self.settings
        now = self.clock()
        lease = timedelta(seconds=s.notify_timeout_seconds * 2)
        rows = claim_due(self.sa, now, limit=s.notify_batch_max, lease=lease)
        self._retrying = False
        for row in rows:
            self._deliver(row)
        return len(rows)

    def _deliver(self, row: OutboxRow) -> None:
        from spojit_engine.notify.rules import UnknownNotification, drop_undelivered, get_rule

        s, sa = self.settings, self.sa
        try:
            rule = get_rule(sa, row.workspace_id, row.rule_id)
        except UnknownNotification:  # removed while this alert waited: nobody to tell
            with write_transaction(sa) as conn:
                drop_undelivered(conn, row.rule_id)
            return
        try:
            deliver(rule.channel, rule.target, row.message,
                    timeout_seconds=s.notify_timeout_seconds,
                    allow_private=s.notify_allow_private_targets)  # fmt: skip
        except DeliveryFailed as exc:
            retry = mark_failed(sa, row, str(exc), self.clock(),
                                attempts_max=s.notify_attempts_max,
                                backoff=timedelta(seconds=s.notify_backoff_seconds))  # fmt: skip
            self._retrying = self._retrying or retry
            return
        mark_sent(sa, row.id, self.clock())

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._ended and not self._stopping:
                    # Woken by a poke; or, while a delivery waits for its retry, by the clock.
                    timeout = self.settings.notify_backoff_seconds if self._retrying else None
                    if not self._cond.wait(timeout=timeout):
                        break
                if self._stopping:
                    return
            try:
                self.flush()
            except Exception:
                log.exception("The notifier's pass failed; it retries on the next poke")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.notify_timeout_seconds * 2)
