"""The ``spojit-renewals`` flow: renew every workspace whose period has ended (or whose grants
or holds expired), release the holds of runs Prefect marked crashed, then let the guard finish
what is pending — resume what a renewal or the next UTC day freed, retry pauses Prefect refused,
replay webhook queues — and forget old history.

Renewal is lazy anyway (the first ledger operation of a period renews it); this flow makes paused
work come back at the reset without waiting for traffic. ``spojit deploy`` deploys it on the
work pool, every ``SPOJIT_RENEWALS_INTERVAL_SECONDS``. Its worker needs the ledger's
``SPOJIT_DATABASE_URL``, like every worker that runs spojit workflows.

This module stays at ``spojit_engine.guards.renewals``: that path is the deployment's entrypoint
(``deployments/deploy.py``'s ``RENEWALS_ENTRYPOINT``), stored in every Prefect server it was
deployed to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from prefect import flow

from spojit_engine.guards.deployments.deploy import RENEWALS_NAME
from spojit_engine.guards.runs.crashed import release_crashed

if TYPE_CHECKING:
    from spojit_engine.guards.guard import Guard


@dataclass(frozen=True, slots=True)
class RenewalReport:
    touched: list[str]  # workspaces brought up to date (renewed, or grants and holds expired)
    resumed: list[str]  # "workspace_id/scope" the guard resumed
    pauses_retried: int
    requests_started: int
    pruned: int
    crashed_holds_released: list[int]  # holds of runs Prefect marked Crashed (runs/crashed.py)


def renew_due(guard: Guard) -> RenewalReport:
    """One pass; a renewal's commit resumes its workspace through the guard's observer."""
    touched = guard.ledger.maintain_due(guard.settings.page_size_max)
    released = release_crashed(guard.ledger, guard.settings.page_size_max)
    report = guard.reconcile()
    pruned = guard.prune()
    return RenewalReport(
        touched, report.resumed, report.pauses_retried, report.requests_started, pruned, released
    )


@flow(name=RENEWALS_NAME, validate_parameters=False)
def renewals_flow() -> dict[str, Any]:
    """The deployed flow: ``renew_due`` on the engine of ``SPOJIT_DATABASE_URL``."""
    from spojit_engine.guards.guard import Guard
    from spojit_engine.metering.meter.runtime import current_runtime

    return asdict(renew_due(Guard.of(current_runtime().engine.ledger)))
