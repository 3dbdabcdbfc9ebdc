"""``Engine``: the one object an application holds. The CLI and the web app call it; nothing
else reaches the ledger. Credits are ``Decimal`` here and µcr integers below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from spojit_engine import accounts
from spojit_engine.billing.catalog import Catalog, Pack, Plan, load_catalog
from spojit_engine.clock import utcnow
from spojit_engine.db import make_engine, migrate, read_transaction
from spojit_engine.errors import InvalidInput
from spojit_engine.metering.ledger import Ledger
from spojit_engine.metering.money import credits_to_ucr_exact
from spojit_engine.metering.records import Usage
from spojit_engine.metering.reports import read_balance, read_breakdown, read_grants
from spojit_engine.metering.schema import KEY_LENGTH_MAX
from spojit_engine.metering.verify import verify_workspace
from spojit_engine.results import Balance, BreakdownRow, Entry, Grant, Hold, Workspace
from spojit_engine.settings import Settings, get_settings


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= KEY_LENGTH_MAX:
        raise InvalidInput(f"An idempotency key must be 1-{KEY_LENGTH_MAX} characters.")
    return key


class Engine:
    """Workspaces, members, credits and reports over one database."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.database_url = database_url or self.settings.resolved_database_url()
        self.sa_engine = make_engine(
            self.database_url, busy_timeout_seconds=self.settings.sqlite_busy_timeout_seconds
        )
        migrate(self.sa_engine)
        self.ledger = Ledger(
            self.sa_engine,
            catalog or load_catalog(),
            clock=clock,
            catch_up_max=self.settings.renewal_catch_up_periods_max,
            holds_batch_max=self.settings.sweep_holds_batch_max,
        )

    def close(self) -> None:
        self.sa_engine.dispose()

    # -- workspaces and members ----------------------------------------------------------------

    def create_workspace(
        self, name: str, *, plan: str = "free", period_start: datetime | None = None
    ) -> Workspace:
        workspace_id = accounts.create_workspace(self.ledger, name, plan, period_start)
        return Workspace(workspace_id, name, plan)

    def workspace_id(self, name_or_id: str) -> str:
        return accounts.find_workspace(self.ledger, name_or_id)

    def workspaces(self) -> list[Workspace]:
        return [
            Workspace(i, n, self.balance(i).plan) for i, n in accounts.list_workspaces(self.ledger)
        ]

    def add_member(
        self, workspace_id: str, email: str, *, role: str = "member", by: str | None = None
    ) -> accounts.MemberRecord:
        return accounts.add_member(self.ledger, workspace_id, email, role, by)

    def member(self, member_id: str) -> accounts.MemberRecord:
        return accounts.get_member(self.ledger, member_id)

    def authenticate(self, token: str) -> accounts.MemberRecord:
        return accounts.authenticate(self.ledger, token)

    # -- plans and packs -----------------------------------------------------------------------

    def plans(self) -> list[Plan]:
        return list(self.ledger.catalog.plans.values())

    def packs(self) -> list[Pack]:
        return list(self.ledger.catalog.packs.values())

    def set_plan(self, workspace_id: str, plan: str, *, by: str | None) -> accounts.PlanChange:
        return accounts.set_plan(self.ledger, workspace_id, plan, by)

    # -- money ---------------------------------------------------------------------------------

    def grant(
        self,
        workspace_id: str,
        amount: Decimal | int | str,
        *,
        kind: str,
        key: str,
        expires_at: datetime | None = None,
        priority: int | None = None,
        effective_at: datetime | None = None,
        reason: str | None = None,
    ) -> Grant:
        record = self.ledger.grant(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            kind=kind,
            key=_check_key(key),
            expires_at=expires_at,
            priority=priority,
            effective_at=effective_at,
            reason=reason,
        )
        return Grant.of(record)

    def debit(
        self,
        workspace_id: str,
        amount: Decimal | int | str,
        *,
        key: str,
        workflow: str | None = None,
        node_type: str | None = None,
        member_id: str | None = None,
        test_run: bool = False,
    ) -> Entry:
        record = self.ledger.debit(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(key),
            usage=Usage(workflow, node_type, member_id, test_run),
        )
        return Entry.of(record)

    def hold(
        self,
        workspace_id: str,
        amount: Decimal | int | str,
        *,
        key: str,
        ttl: timedelta | None = None,
        workflow: str | None = None,
        node_type: str | None = None,
        member_id: str | None = None,
        test_run: bool = False,
    ) -> Hold:
        record = self.ledger.hold(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(key),
            ttl=ttl if ttl is not None else timedelta(seconds=self.settings.hold_ttl_seconds),
            usage=Usage(workflow, node_type, member_id, test_run),
        )
        return Hold.of(record)

    def settle(self, hold_id: int, actual: Decimal | int | str) -> Entry:
        actual_ucr = credits_to_ucr_exact(actual, allow_zero=True)
        return Entry.of(self.ledger.settle(hold_id, actual_ucr=actual_ucr))

    def release(self, hold_id: int) -> Hold:
        return Hold.of(self.ledger.release(hold_id))

    def sweep(self, *, limit: int | None = None) -> list[str]:
        """Renew, expire and void whatever is due in every workspace; returns those touched."""
        return self.ledger.maintain_due(limit or self.settings.page_size_max)

    # -- reports -------------------------------------------------------------------------------

    def balance(self, workspace_id: str) -> Balance:
        self.ledger.bring_up_to_date(workspace_id)
        with read_transaction(self.sa_engine) as conn:
            return Balance.of(read_balance(conn, workspace_id, self.ledger.clock()))

    def grants(self, workspace_id: str) -> list[Grant]:
        self.ledger.bring_up_to_date(workspace_id)
        with read_transaction(self.sa_engine) as conn:
            return [Grant.of(r) for r in read_grants(conn, workspace_id)]

    def breakdown(
        self,
        workspace_id: str,
        *,
        by: Sequence[str] = ("workflow", "node_type"),
        since: datetime | None = None,
        member_id: str | None = None,
    ) -> list[BreakdownRow]:
        """Consumption grouped by ``by`` (and test vs live), this period unless ``since``."""
        start = since or self.balance(workspace_id).period_start
        with read_transaction(self.sa_engine) as conn:
            rows = read_breakdown(conn, workspace_id, by=by, since=start, member_id=member_id)
        return [BreakdownRow.of(r) for r in rows]

    def verify(self, workspace_id: str | None = None) -> int:
        """Check one workspace, or all; returns how many were checked. Raises ``LedgerCorrupt``."""
        ids = (
            [workspace_id]
            if workspace_id
            else [i for i, _ in accounts.list_workspaces(self.ledger)]
        )
        with read_transaction(self.sa_engine) as conn:
            for each in ids:
                verify_workspace(conn, each)
        return len(ids)
