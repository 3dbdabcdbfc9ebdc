"""The guard's reconciler in the background of ``spojit serve``: every
``SPOJIT_GUARD_RECONCILE_INTERVAL_SECONDS`` it finishes what any process left pending — a resume
recorded while Prefect was unreachable (a grant from a shell without ``PREFECT_API_URL``), pauses
not applied yet, webhook queues of workspaces that may run again — so paused work comes back
within seconds instead of at the next ``spojit-renewals`` run.

One daemon thread, a stop event, one ``Guard.reconcile`` per pass (cheap when nothing is
stopped: one indexed read). A failing pass is logged once per distinct reason and retried next
pass; several servers may run it at once (the guard's leases serialise the work).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spojit_engine.guards.guard import Guard, ReconcileReport

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, guard: Guard, *, interval_seconds: float) -> None:
        self.guard = guard
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self.passes = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="spojit-guard-reconciler", daemon=True
            )
            self._thread.start()

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            self._thread = None

    def run_once(self) -> ReconcileReport | None:
        """One pass; None when it failed (logged once per distinct reason)."""
        try:
            report = self.guard.reconcile()
        except Exception as exc:  # a pass must never kill the loop; the next one retries
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            if reason != self._last_error:
                log.warning("The guard's reconciler will retry: %s", reason)
            self._last_error = reason
            return None
        self._last_error = None
        if report.resumed or report.requests_started:
            log.info(
                "Guard: resumed %s, started %d queued webhook request(s).",
                ", ".join(report.resumed) or "nothing",
                report.requests_started,
            )
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self.passes += 1
            self._stop.wait(self.interval_seconds)
