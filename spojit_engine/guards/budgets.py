"""Per-workflow budget caps: ``max_credits_per_run`` and ``max_credits_per_day`` (a UTC day), and
a test run's own cap (``spojit run --test --max-credits C``), counted like a run cap.

Enforced exactly, inside the ledger: ``Budgets.limit`` is a spend limit the ledger calls under the
workspace's lock, in the transaction that would admit a debit or hold, so no two node calls of a
workflow can together cross its cap. What counts as spent (µcr):

- a day: the workflow's debits and settles since 00:00 UTC, plus its open holds;
- a run: the debits of that flow run, plus its holds (open: the held amount; settled: the actual
  cost; released or expired: nothing), plus what its reservation paid for charges the limit never
  saw (group commit batches a reserved run's base charges without it): the reservation's drawn
  amount, less the draws of the debits and holds counted already. The limit remembers each debit
  and hold key of a capped run in ``guard_run_spends``, in the same transaction, so the sum reads
  the ledger's own rows. Charges a process has batched but not yet committed are not in the
  ledger, so a run may pass its cap by at most its uncommitted batch (the bound of
  ``metering/meter/batch.py``).

The day cap is written once: ``day_cap_refusal`` builds its refusal (for a spend, and at a run's
start), ``Budget.day_spent`` says when nothing more may start today, and ``Guard.stop_for_day_cap``
stops the workflow for the rest of the day. ``WorkflowBudget`` is a cap as the ``Engine`` returns
it (credits as ``Decimal``).

Caps are read through a per-process cache (``SPOJIT_BUDGET_CACHE_SECONDS``): a cap set in another
process applies within that many seconds; one set through this process applies at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, case, delete, func, insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards.errors import BudgetExceeded
from spojit_engine.guards.policy import (
    Cause,
    day_start,
    next_day,
    over_day_budget,
    over_run_budget,
    over_test_cap,
)
from spojit_engine.guards.schema import guard_run_spends, workflow_budgets
from spojit_engine.metering.core.holds import HoldState
from spojit_engine.metering.core.records import USAGE_KINDS, Usage
from spojit_engine.metering.ledger.observers import Spend
from spojit_engine.metering.ledger.posting import LedgerTx
from spojit_engine.metering.ledger.reservations import RESERVATION_PREFIX, reservation_key
from spojit_engine.metering.store import schema
from spojit_engine.money import ucr_to_credits


@dataclass(frozen=True, slots=True)
class Budget:
    workspace_id: str
    workflow: str
    max_per_run_ucr: int | None
    max_per_day_ucr: int | None
    updated_at: datetime

    def day_spent(self, spent_ucr: int) -> bool:
        """Nothing more may start today: the workflow has a day cap and ``spent_ucr`` (what it
        spent today) reached it."""
        return self.max_per_day_ucr is not None and spent_ucr >= self.max_per_day_ucr


@dataclass(frozen=True, slots=True)
class WorkflowBudget:
    """A workflow's caps as the ``Engine`` returns them: credits as ``Decimal`` (the facade)."""

    workspace_id: str
    workflow: str
    max_credits_per_run: Decimal | None
    max_credits_per_day: Decimal | None
    updated_at: datetime

    @classmethod
    def of(cls, b: Budget) -> WorkflowBudget:
        def credits(ucr: int | None) -> Decimal | None:
            return None if ucr is None else ucr_to_credits(ucr)

        return cls(
            b.workspace_id,
            b.workflow,
            credits(b.max_per_run_ucr),
            credits(b.max_per_day_ucr),
            b.updated_at,
        )


def day_cap_refusal(
    workspace: str, workflow: str, cap_ucr: int, spent_ucr: int, needed_ucr: int, now: datetime
) -> BudgetExceeded:
    """The refusal of a spend of ``needed_ucr`` (0: a run's start) that ``workflow``'s day cap
    of ``cap_ucr`` forbids, ``spent_ucr`` spent today; it lasts until the next UTC day."""
    until = next_day(now)
    return BudgetExceeded(
        over_day_budget(workflow, cap_ucr, spent_ucr, needed_ucr, until),
        workspace=workspace,
        workflow=workflow,
        cause=Cause.BUDGET_DAY.value,
        needed_ucr=needed_ucr,
        allowed_ucr=cap_ucr - spent_ucr,
        until=until,
    )


def run_cap_refusal(
    workspace: str, workflow: str, cause: Cause, cap_ucr: int, spent_ucr: int, needed_ucr: int,
    now: datetime,
) -> BudgetExceeded:  # fmt: skip
    """The refusal of a spend of ``needed_ucr`` that a run's cap forbids: its workflow's
    ``max_credits_per_run`` (``BUDGET_RUN``) or a test run's own ``max_credits`` (``TEST_CAP``)."""
    message = (
        over_test_cap(cap_ucr, spent_ucr, needed_ucr)
        if cause is Cause.TEST_CAP
        else over_run_budget(workflow, cap_ucr, spent_ucr, needed_ucr)
    )
    return BudgetExceeded(
        message,
        workspace=workspace,
        workflow=workflow,
        cause=cause.value,
        needed_ucr=needed_ucr,
        allowed_ucr=cap_ucr - spent_ucr,
        until=next_day(now),
    )


def spent_today_ucr(conn: Connection, workspace_id: str, workflow: str, now: datetime) -> int:
    """What ``workflow`` spent today (UTC): its debits and settles since 00:00, and open holds."""
    e, h = schema.entries.c, schema.holds.c
    posted = conn.execute(
        select(func.coalesce(-func.sum(e.amount_ucr), 0)).where(
            e.workspace_id == workspace_id,
            e.created_at >= day_start(now),
            e.workflow == workflow,
            e.kind.in_(USAGE_KINDS),
        )
    ).scalar_one()
    held = conn.execute(
        select(func.coalesce(func.sum(h.amount_ucr), 0)).where(
            h.state == HoldState.HELD.value, h.workspace_id == workspace_id, h.workflow == workflow
        )
    ).scalar_one()
    return int(posted) + int(held)


def spent_in_run_ucr(conn: Connection, flow_run_id: str) -> int:
    """What one flow run of a capped workflow spent, from the ledger rows its keys name: each
    credit once, whether a registered debit or hold took it from the reservation or not."""
    e, h, r = schema.entries.c, schema.holds.c, guard_run_spends.c
    drawn = conn.execute(
        select(func.coalesce(h.settled_ucr, 0)).where(h.key == reservation_key(flow_run_id))
    ).scalar()
    # Debits: all of each; a debit's held_ucr is minus what it drew from the reservation.
    debits, debits_drew = conn.execute(
        select(func.coalesce(-func.sum(e.amount_ucr), 0), func.coalesce(-func.sum(e.held_ucr), 0))
        .select_from(schema.entries.join(guard_run_spends, e.key == r.key))
        .where(r.flow_run_id == flow_run_id, r.kind == "debit")
    ).one()
    # Holds: what each holds or settled; its entry's held_ucr is its amount less what it carved
    # from the reservation.
    hold_entry = schema.entries.alias("hold_entry")
    holds, holds_carved = conn.execute(
        select(
            func.coalesce(
                func.sum(
                    case(
                        (h.state == HoldState.HELD.value, h.amount_ucr),
                        (h.state == HoldState.SETTLED.value, h.settled_ucr),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(func.sum(h.amount_ucr - hold_entry.c.held_ucr), 0),
        )
        .select_from(
            schema.holds.join(guard_run_spends, h.key == r.key).join(
                hold_entry, (hold_entry.c.key == h.key) & (hold_entry.c.kind == "hold")
            )
        )
        # A run's reservation is not spent itself: what is drawn from it is.
        .where(
            r.flow_run_id == flow_run_id,
            r.kind == "hold",
            ~h.key.startswith(RESERVATION_PREFIX),
        )
    ).one()
    # What the reservation paid for charges the limit never saw (group commit's batches).
    unseen = int(drawn or 0) - int(debits_drew) - int(holds_carved)
    return int(debits) + int(holds) + unseen


def _current_run_cap() -> tuple[str | None, int | None]:
    """The flow run this spend belongs to, and its test cap in µcr; Prefect is consulted only
    if something imported it."""
    if "prefect" not in sys.modules:
        return None, None
    from spojit_engine.metering.meter.run_context import current_run

    run = current_run()
    return (run.flow_run_id, run.max_credits_ucr) if run else (None, None)


class Budgets:
    def __init__(
        self, engine: SAEngine, clock: Callable[[], datetime], cache_seconds: float
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Budget]]] = {}
        self._lock = threading.Lock()

    # -- storage -----------------------------------------------------------------------------------

    def set(
        self,
        workspace_id: str,
        workflow: str,
        *,
        max_per_run_ucr: int | None,
        max_per_day_ucr: int | None,
    ) -> Budget | None:
        """Set (or, with both None, remove) a workflow's caps."""
        if not workflow or len(workflow) > 128:
            raise InvalidInput("A workflow name has 1-128 characters.")
        for cap in (max_per_run_ucr, max_per_day_ucr):
            if cap is not None and cap <= 0:
                raise InvalidInput("A budget cap must be more than zero credits.")
        b = workflow_budgets.c
        where = (b.workspace_id == workspace_id, b.workflow == workflow)
        values = {
            "max_credits_per_run_ucr": max_per_run_ucr,
            "max_credits_per_day_ucr": max_per_day_ucr,
            "updated_at": self.clock(),
        }
        with write_transaction(self.engine) as conn:
            if max_per_run_ucr is None and max_per_day_ucr is None:
                conn.execute(delete(workflow_budgets).where(*where))
            elif not conn.execute(update(workflow_budgets).where(*where).values(**values)).rowcount:
                conn.execute(
                    insert(workflow_budgets).values(
                        workspace_id=workspace_id, workflow=workflow, **values
                    )
                )
        with self._lock:
            self._cache.pop(workspace_id, None)
        return self.get(workspace_id, workflow)

    def get(self, workspace_id: str, workflow: str) -> Budget | None:
        with read_transaction(self.engine) as conn:
            return self._load(conn, workspace_id).get(workflow)

    @staticmethod
    def _load(conn: Connection, workspace_id: str) -> dict[str, Budget]:
        b = workflow_budgets.c
        rows = conn.execute(
            select(
                b.workspace_id,
                b.workflow,
                b.max_credits_per_run_ucr,
                b.max_credits_per_day_ucr,
                b.updated_at,
            ).where(b.workspace_id == workspace_id)
        )
        return {row.workflow: Budget(*row) for row in rows}

    def cached(self, conn: Connection, workspace_id: str, workflow: str) -> Budget | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(workspace_id)
        if hit is None or now - hit[0] > self.cache_seconds:
            hit = (now, self._load(conn, workspace_id))
            with self._lock:
                self._cache[workspace_id] = hit
        return hit[1].get(workflow)

    # -- enforcement -------------------------------------------------------------------------------

    def limit(self, tx: LedgerTx, spend: Spend) -> InsufficientCredits | None:
        """The ledger's spend limit (under the workspace's lock): refuse what crosses a cap —
        a workflow's day or run cap, or a test run's own ``max_credits``."""
        workflow = spend.usage.workflow
        run_id, test_cap_ucr = _current_run_cap()
        budget = self.cached(tx.conn, tx.account.id, workflow) if workflow else None
        if budget is not None and budget.max_per_day_ucr is not None:
            spent = spent_today_ucr(tx.conn, tx.account.id, budget.workflow, tx.now)
            if spent + spend.amount_ucr > budget.max_per_day_ucr:
                return day_cap_refusal(
                    tx.account.name,
                    budget.workflow,
                    budget.max_per_day_ucr,
                    spent,
                    spend.amount_ucr,
                    tx.now,
                )
        caps = [(test_cap_ucr, Cause.TEST_CAP)] if test_cap_ucr is not None else []
        if budget is not None and budget.max_per_run_ucr is not None:
            caps.append((budget.max_per_run_ucr, Cause.BUDGET_RUN))
        if not caps or run_id is None:
            return None
        cap_ucr, cause = min(caps, key=lambda c: c[0])
        spent = spent_in_run_ucr(tx.conn, run_id)
        if spent + spend.amount_ucr > cap_ucr:
            name = workflow or "(none)"
            return run_cap_refusal(
                tx.account.name, name, cause, cap_ucr, spent, spend.amount_ucr, tx.now
            )
        tx.conn.execute(
            insert(guard_run_spends).values(
                key=spend.key,
                flow_run_id=run_id,
                workspace_id=tx.account.id,
                kind=spend.kind,
                created_at=tx.now,
            )
        )
        return None

    def day_refusal(
        self, workspace: str, workspace_id: str, workflow: str
    ) -> BudgetExceeded | None:
        """At a run's start: the day's cap is already spent (nothing more can run today)."""
        now = self.clock()
        with read_transaction(self.engine) as conn:
            budget = self.cached(conn, workspace_id, workflow)
            if budget is None or budget.max_per_day_ucr is None:
                return None
            spent = spent_today_ucr(conn, workspace_id, workflow, now)
        if not budget.day_spent(spent):
            return None
        return day_cap_refusal(workspace, workflow, budget.max_per_day_ucr, spent, 0, now)

    def prune(self, before: datetime) -> int:
        """Forget which keys old runs spent (their caps no longer matter)."""
        r = guard_run_spends.c
        with write_transaction(self.engine) as conn:
            return int(conn.execute(delete(guard_run_spends).where(r.created_at < before)).rowcount)

    def applies(self, workspace_id: str, usage: Usage) -> bool:
        """Could ``limit`` refuse or record a spend of ``usage`` (a cap on its workflow, or the
        run's test cap)? Where no spend limit applies, a PostgreSQL debit is one server call."""
        if _current_run_cap()[1] is not None:
            return True
        if not usage.workflow:
            return False
        with self._lock:
            hit = self._cache.get(workspace_id)
        if hit is None or time.monotonic() - hit[0] > self.cache_seconds:
            with read_transaction(self.engine) as conn:
                return self.cached(conn, workspace_id, usage.workflow) is not None
        return usage.workflow in hit[1]
