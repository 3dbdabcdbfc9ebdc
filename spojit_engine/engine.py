"""``Engine``: the one object an application holds. The CLI and the web app call it; nothing
else reaches the ledger. Credits are ``Decimal`` here and µcr integers below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spojit_engine import accounts
from spojit_engine.clock import utcnow
from spojit_engine.db import make_engine, migrate, read_transaction
from spojit_engine.errors import InvalidInput, UnknownExecution
from spojit_engine.guards.guard import Guard, ResumeWatch
from spojit_engine.metering.core.catalog import Catalog, Pack, Plan, load_catalog
from spojit_engine.metering.core.records import Usage
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.metering.reads.reports import (
    read_balance,
    read_breakdown,
    read_fresh,
    read_grants,
)
from spojit_engine.metering.reads.verify import verify_workspace
from spojit_engine.metering.store.schema import (
    EMAIL_LENGTH_MAX,
    ID_LENGTH_MAX,
    KEY_LENGTH_MAX,
    NAME_LENGTH_MAX,
    REASON_LENGTH_MAX,
    RUN_ID_LENGTH_MAX,
    WORKFLOW_LENGTH_MAX,
)
from spojit_engine.money import credits_to_ucr_exact
from spojit_engine.results import (
    Balance,
    BreakdownRow,
    BrowserSession,
    Entry,
    Execution,
    ExecutionDetail,
    Grant,
    Hold,
    LoginLink,
    NotificationRule,
    NotificationSent,
    TimelineDay,
    TopupOrder,
    Workspace,
)
from spojit_engine.settings import Settings, get_settings
from spojit_engine.text import check_line, check_lookup

if TYPE_CHECKING:
    from spojit_engine.billing.checkout import CheckoutStarted
    from spojit_engine.billing.service import Billing
    from spojit_engine.billing.stripe_events import WebhookResult
    from spojit_engine.estimation.results import Advice, Estimate
    from spojit_engine.guards.budgets import WorkflowBudget
    from spojit_engine.guards.deployments.deploy import Deployed, DeployRequest
    from spojit_engine.guards.deployments.reconciler import Reconciler
    from spojit_engine.guards.deployments.status import DeploymentStatus, PausedWork
    from spojit_engine.guards.deployments.webhooks import Receipt
    from spojit_engine.guards.runs.incomplete import IncompleteRun
    from spojit_engine.guards.runs.resume import ResumeStarted
    from spojit_engine.metering.meter.runtime import Runtime
    from spojit_engine.metering.store.usage import UsageRow
    from spojit_engine.nodes.workflow import Workflow
    from spojit_engine.notify.decide import WorkspaceStop


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"An idempotency key must be 1-{KEY_LENGTH_MAX} characters.")
    return check_lookup(key, what="An idempotency key", chars_max=KEY_LENGTH_MAX)


def _usage(
    workflow: str | None, node_type: str | None, member_id: str | None, test_run: bool
) -> Usage:
    """Who and what a charge is for, each checked as its column will hold it (the same on
    SQLite, which would store anything, and PostgreSQL, which would refuse it)."""
    return Usage(
        None if workflow is None else _workflow(workflow),
        None if node_type is None else check_line(
            node_type, what="node_type", chars_max=NAME_LENGTH_MAX
        ),
        None if member_id is None else check_lookup(
            member_id, what="member_id", chars_max=ID_LENGTH_MAX
        ),
        test_run,
    )  # fmt: skip


def _workflow(name: str) -> str:
    return check_line(name, what="A workflow name", chars_max=WORKFLOW_LENGTH_MAX)


def _run_id(flow_run_id: str) -> str:
    return check_lookup(flow_run_id, what="A flow run id", chars_max=RUN_ID_LENGTH_MAX)


def _reason(reason: str | None) -> str | None:
    """Why credits moved, as a person wrote it (kept with the grant or the clawback)."""
    if reason is None:
        return None
    return check_line(reason, what="The reason", chars_max=REASON_LENGTH_MAX)


class Engine:
    """Workspaces, members, credits and reports over one database."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
        catalog: Catalog | None = None,
        stripe_http_client: Any = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._stripe_http_client = stripe_http_client  # a stripe.HTTPClient; tests pass a fake
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
        # watches this ledger through its observers: pauses on refusals, resumes on grants
        self.guard = Guard(self.ledger, self.settings)
        from spojit_engine.notify.service import Notifier

        # hears committed spends and grants, and the guard's pauses and resumes; sends in background
        self.notifier = Notifier(self.ledger, self.settings, stop_of=self._workspace_stop)
        self.guard.on_change(self.notifier.poke)

    def _workspace_stop(self, workspace_id: str) -> WorkspaceStop | None:
        """The guard's pause of a workspace, as the notifier reads it."""
        from spojit_engine.notify.decide import WorkspaceStop

        stop = self.guard.workspace_stop(workspace_id)
        return None if stop is None else WorkspaceStop(*stop)

    def close(self) -> None:
        self.notifier.stop()
        self.sa_engine.dispose()

    def now(self) -> datetime:
        """The ledger's clock: what every period, expiry and "since" is measured against."""
        return self.ledger.clock()

    # -- workspaces and members ----------------------------------------------------------------

    def create_workspace(
        self, name: str, *, plan: str = "free", period_start: datetime | None = None
    ) -> Workspace:
        workspace_id = accounts.create_workspace(self.ledger, name, plan, period_start)
        return Workspace(workspace_id, name, plan)

    def workspace_id(self, name_or_id: str) -> str:
        check_lookup(name_or_id, what="A workspace name or id", chars_max=NAME_LENGTH_MAX)
        return accounts.find_workspace(self.ledger, name_or_id)

    def workspaces(self) -> list[Workspace]:
        return [Workspace(i, n, self.balance(i).plan) for i, n in self.workspace_names()]

    def workspace_names(self) -> list[tuple[str, str]]:
        """(id, name) of every workspace, the oldest first."""
        return accounts.list_workspaces(self.ledger)

    def model_cost_map(self) -> dict[str, Any]:
        """LiteLLM's local price map, which node calls price models from (imports LiteLLM)."""
        from spojit_engine.llm import litellm_module

        return dict(litellm_module().model_cost)

    def add_member(
        self, workspace_id: str, email: str, *, role: str = "member", by: str | None = None
    ) -> accounts.MemberRecord:
        return accounts.add_member(self.ledger, workspace_id, email, role, by)

    def member(self, member_id: str) -> accounts.MemberRecord:
        return accounts.get_member(self.ledger, member_id)

    def members(self, workspace_id: str, *, removed: bool = False) -> list[accounts.MemberRecord]:
        """The workspace's members, by email (no tokens: only their hashes are kept); with
        ``removed``, the removed ones too (to name who ran what)."""
        return accounts.list_members(self.ledger, self.workspace_id(workspace_id), removed=removed)

    def member_emails(self, workspace_id: str) -> dict[str, str]:
        """Each member's email by member id, in one query (never one lookup per row shown);
        removed members too, so their runs and grants keep naming them."""
        return {m.id: m.email for m in self.members(workspace_id, removed=True)}

    def remove_member(
        self, workspace_id: str, who: str, *, by: str | None = None
    ) -> accounts.MemberRecord:
        """Remove ``who`` (an id or an email; admins only): their token and browser sessions are
        refused from now on, while history keeps naming them. Not the last admin."""
        who = check_lookup(who, what="A member id or email", chars_max=EMAIL_LENGTH_MAX)
        return accounts.remove_member(self.ledger, self.workspace_id(workspace_id), who, by)

    def rotate_token(
        self, workspace_id: str, who: str, *, by: str | None = None
    ) -> accounts.MemberRecord:
        """A new token for ``who`` (an id or an email), on the record returned once; the old token
        is refused from now on. Their own for a member, anyone's for an admin."""
        who = check_lookup(who, what="A member id or email", chars_max=EMAIL_LENGTH_MAX)
        return accounts.rotate_token(self.ledger, self.workspace_id(workspace_id), who, by)

    def authenticate(self, token: str) -> accounts.MemberRecord:
        return accounts.authenticate(self.ledger, token)

    def require_admin(self, workspace_id: str, by: str | None, action: str) -> None:
        """Refuse (``AdminRequired``) unless ``by`` is an admin of the workspace (None: the local
        operator, who holds the database)."""
        accounts.require_admin(self.ledger, workspace_id, by, action)

    # -- plans and packs -----------------------------------------------------------------------

    def plans(self) -> list[Plan]:
        return list(self.ledger.catalog.plans.values())

    def packs(self) -> list[Pack]:
        return list(self.ledger.catalog.packs.values())

    def currency(self) -> str:
        """The currency plans and packs are priced in (ISO 4217, lower case)."""
        return self.ledger.catalog.currency

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
        by: str | None = None,
    ) -> Grant:
        """Add a block of credits. ``by`` is the admin granting it (None: the local operator);
        the grant records who and ``reason`` says why."""
        accounts.require_admin(self.ledger, workspace_id, by, "grant credits")
        record = self.ledger.grant(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            kind=kind,
            key=_check_key(key),
            expires_at=expires_at,
            priority=priority,
            effective_at=effective_at,
            reason=_reason(reason),
            granted_by=by or "operator",
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
        flow_run_id: str | None = None,
    ) -> Entry:
        """Take ``amount`` now; a charge of ``flow_run_id`` draws from its reservation first."""
        record = self.ledger.debit(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(key),
            usage=_usage(workflow, node_type, member_id, test_run),
            run_id=None if flow_run_id is None else _run_id(flow_run_id),
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
        flow_run_id: str | None = None,
    ) -> Hold:
        record = self.ledger.hold(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(key),
            ttl=ttl if ttl is not None else timedelta(seconds=self.settings.hold_ttl_seconds),
            usage=_usage(workflow, node_type, member_id, test_run),
            run_id=None if flow_run_id is None else _run_id(flow_run_id),
        )
        return Hold.of(record)

    def reserve_run(
        self,
        workspace_id: str,
        amount: Decimal | int | str,
        *,
        flow_run_id: str,
        ttl: timedelta | None = None,
        workflow: str | None = None,
    ) -> Hold:
        """Hold ``amount`` for flow run ``flow_run_id``: its node charges draw from it (refused
        with ``InsufficientCredits`` like any hold; the same call again returns the first)."""
        from spojit_engine.metering.ledger.reservations import reservation_key
        from spojit_engine.metering.meter.run_billing import forget_run

        seconds = self.settings.run_reservation_ttl_seconds
        record = self.ledger.reserve(
            workspace_id,
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(reservation_key(_run_id(flow_run_id))),
            ttl=ttl if ttl is not None else timedelta(seconds=seconds),
            usage=_usage(workflow, None, None, False),
        )
        forget_run(flow_run_id)  # its next node call in this process batches against it
        return Hold.of(record)

    def close_run_reservation(self, flow_run_id: str) -> Hold | None:
        """The run ended: commit its batched charges, give back what its reservation has left.
        Idempotent; None when the run had no reservation."""
        from spojit_engine.metering.ledger.reservations import reservation_key
        from spojit_engine.metering.meter.batch import commit_run
        from spojit_engine.metering.meter.run_billing import forget_run

        commit_run(flow_run_id)
        forget_run(flow_run_id)
        record = self.ledger.close_reservation(reservation_key(flow_run_id))
        return None if record is None else Hold.of(record)

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
        """The usage card, read without the ledger's write lock unless something is due."""
        record = read_fresh(
            self.ledger, workspace_id, lambda conn, now: read_balance(conn, workspace_id, now)
        )
        return Balance.of(record)

    def grants(self, workspace_id: str) -> list[Grant]:
        records = read_fresh(
            self.ledger, workspace_id, lambda conn, _: read_grants(conn, workspace_id)
        )
        return [Grant.of(r) for r in records]

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

    def timeline(
        self, workspace_id: str, *, days: int | None = None, member_id: str | None = None
    ) -> list[TimelineDay]:
        """This period day by day (or the last ``days`` days, today included): credits, calls
        and what drove each day; only ``member_id``'s usage when given. A day starts at the
        workspace's reset time of day (midnight UTC unless its plan started at another time)."""
        from spojit_engine.metering.reads.timeline import read_timeline

        days_max = self.settings.timeline_days_max
        if days is not None and not 1 <= days <= days_max:
            raise InvalidInput(f"days must be 1-{days_max}, not {days}.")

        def read(conn: Any, now: datetime) -> list[Any]:
            return read_timeline(conn, workspace_id, now, days=days, member_id=member_id)

        return [TimelineDay.of(r) for r in read_fresh(self.ledger, workspace_id, read)]

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

    # -- executions ----------------------------------------------------------------------------

    def executions(
        self, workspace_id: str, *, member_id: str | None = None, limit: int = 20, offset: int = 0
    ) -> list[Execution]:
        """Runs (Executions), the latest started first, skipping the first ``offset``; each with
        its exact credits, run name and trigger; only ``member_id``'s runs when given (a member
        sees only their own)."""
        from spojit_engine.metering.reads.executions import read_executions

        self.workspace_id(workspace_id)
        self._check_page(limit, offset)
        records = read_executions(
            self.sa_engine,
            workspace_id,
            member_id=member_id,
            limit=limit,
            offset=offset,
            records_max=self.settings.page_size_max * 20,
        )
        from dataclasses import replace

        from spojit_engine.guards.runs.incomplete import statuses_of

        stopped = statuses_of(self.sa_engine, workspace_id, [r.flow_run_id for r in records])
        records = [replace(r, status=stopped.get(r.flow_run_id, r.status)) for r in records]
        return [Execution.of(r) for r in records]

    def _check_page(self, limit: int, offset: int = 0) -> None:
        """A page of a listing: 1-``page_size_max`` rows after skipping 0-``page_offset_max``
        (a bound both databases can hold: an offset past 2**63 is refused, never a 500)."""
        size_max, offset_max = self.settings.page_size_max, self.settings.page_offset_max
        if not 1 <= limit <= size_max:
            raise InvalidInput(f"limit must be 1-{size_max}, not {limit}.")
        if not 0 <= offset <= offset_max:
            raise InvalidInput(f"offset must be 0-{offset_max}, not {offset}.")

    def usage_records(
        self, workspace_id: str, *, flow_run_id: str | None = None,
        since: datetime | None = None, limit: int = 500,
    ) -> list[UsageRow]:  # fmt: skip
        """A workspace's node calls as recorded, newest first (``since``: at or after it; a
        live view of a run reads its own as they land)."""
        from spojit_engine.metering.store.usage import read_usage

        return read_usage(self.sa_engine, workspace_id=workspace_id, flow_run_id=flow_run_id,
                          since=since, limit=limit)  # fmt: skip

    def execution(
        self, workspace_id: str, flow_run_id: str, *, member_id: str | None = None
    ) -> ExecutionDetail:
        """One run and its nodes (credits, tokens and models per node); ``UnknownExecution``
        when the workspace has no such run, or it is not ``member_id``'s."""
        from spojit_engine.metering.reads.executions import read_execution

        self.workspace_id(workspace_id)
        record = read_execution(
            self.sa_engine,
            workspace_id,
            _run_id(flow_run_id),
            member_id=member_id,
            records_max=self.settings.page_size_max * 20,
        )
        if record is None:
            raise UnknownExecution(flow_run_id)
        return ExecutionDetail.of(record)

    # -- sign-in for the web pages -------------------------------------------------------------

    def login_link(
        self, workspace_id: str, *, member_id: str | None = None, ttl: timedelta | None = None
    ) -> LoginLink:
        """A one-time link (``SPOJIT_PUBLIC_URL/login/<token>``) that signs ``member_id`` (an id or
        an email; None: the workspace's first admin) in to the web pages; valid for ``ttl``."""
        from spojit_engine.signin.links import create_link

        workspace_id = self.workspace_id(workspace_id)
        minutes_max = self.settings.login_link_ttl_minutes_max
        ttl = ttl if ttl is not None else timedelta(minutes=self.settings.login_link_ttl_minutes)
        if not timedelta(minutes=1) <= ttl <= timedelta(minutes=minutes_max):
            raise InvalidInput(f"A login link lives 1-{minutes_max} minutes.")
        now = self.ledger.clock()
        token, member = create_link(
            self.sa_engine,
            workspace_id,
            member=member_id,
            now=now,
            ttl=ttl,
            history=timedelta(days=self.settings.signin_history_days),
        )
        url = f"{self.settings.public_url.rstrip('/')}/login/{token}"
        return LoginLink(url, now + ttl, member.id, member.email)

    def redeem_login_link(self, token: str) -> BrowserSession:
        """Spend a login link and start a browser session (``SignInRefused`` if used/expired)."""
        from spojit_engine.signin.links import redeem_link

        ttl = timedelta(hours=self.settings.browser_session_ttl_hours)
        return BrowserSession.of(
            redeem_link(self.sa_engine, token, now=self.ledger.clock(), session_ttl=ttl)
        )

    def session_member(self, session_token: str) -> BrowserSession:
        """The live browser session of this cookie, with its member (``SignInRefused`` if not)."""
        from spojit_engine.signin.links import read_session

        return BrowserSession.of(
            read_session(self.sa_engine, session_token, now=self.ledger.clock())
        )

    def end_session(self, session_token: str) -> bool:
        """Sign out; True when a live session ended."""
        from spojit_engine.signin.links import end_session

        return end_session(self.sa_engine, session_token, now=self.ledger.clock())

    # -- notifications ---------------------------------------------------------------------------

    def notification_rules(self, workspace_id: str) -> list[NotificationRule]:
        from spojit_engine.notify.rules import list_rules

        workspace_id = self.workspace_id(workspace_id)
        return [NotificationRule.of(r) for r in list_rules(self.sa_engine, workspace_id)]

    def add_notification(
        self,
        workspace_id: str,
        *,
        kind: str = "thresholds",
        webhook: str | None = None,
        block: str | None = None,
        workflow: str | None = None,
        above: Decimal | int | str | None = None,
        factor: Decimal | int | str | None = None,
        runs: int | None = None,
    ) -> NotificationRule:
        """Notify ``webhook`` (a URL) or ``block`` (a Prefect notification block, TYPE/NAME):
        ``thresholds`` (75/90/100 % of the period's credits, out of credits, resumed — each once
        a period), ``run_above`` (a live run of ``workflow`` above ``above`` credits) or
        ``regression`` (a live run above ``factor`` x the median of its last ``runs``)."""
        from spojit_engine.notify.rules import add_rule, check_rule, regression_factor

        workspace_id = self.workspace_id(workspace_id)
        if (webhook is None) == (block is None):
            raise InvalidInput("Name one target: a webhook URL or a Prefect block.")
        fields: dict[str, Any] = {
            "kind": kind, "workflow": workflow,
            "limit_ucr": None if above is None else credits_to_ucr_exact(above),
            "factor": regression_factor(factor), "runs": runs if kind == "regression" else None,
            "channel": "webhook" if webhook is not None else "block",
            "target": webhook if webhook is not None else block,
        }  # fmt: skip
        check_rule(**fields, runs_max=self.settings.notify_regression_runs_max,
                   allow_private=self.settings.notify_allow_private_targets)  # fmt: skip
        if workflow is not None and not self.knows_workflow(workspace_id, workflow):
            raise InvalidInput(
                f"Workspace has not run or deployed a workflow named {workflow!r}; "
                "name one it runs (spojit usage --breakdown, spojit deployments)."
            )
        record = add_rule(self.sa_engine, workspace_id, now=self.ledger.clock(), **fields)
        self.notifier.forget_rules(workspace_id)
        return NotificationRule.of(record)

    def knows_workflow(self, workspace_id: str, workflow: str) -> bool:
        """The workspace has run ``workflow`` (in any period) or deployed it."""
        from spojit_engine.guards.store import bindings
        from spojit_engine.metering.reads.rollup import workflow_ran

        with read_transaction(self.sa_engine) as conn:
            if workflow_ran(conn, workspace_id, workflow):
                return True
        return bool(bindings(self.sa_engine, workspace_id, workflow, limit=1))

    def remove_notification(self, workspace_id: str, rule_id: str) -> None:
        from spojit_engine.notify.rules import remove_rule

        workspace_id = self.workspace_id(workspace_id)
        remove_rule(self.sa_engine, workspace_id, rule_id)
        self.notifier.forget_rules(workspace_id)

    def test_notification(self, workspace_id: str, rule_id: str) -> NotificationSent:
        """Send a test alert through the rule's target now (through the outbox, like any)."""
        from spojit_engine.notify.trial_alert import send_test

        workspace_id = self.workspace_id(workspace_id)
        name = self.balance(workspace_id).workspace
        return NotificationSent.of(send_test(self.notifier, workspace_id, name, rule_id))

    def notifications_sent(self, workspace_id: str, *, limit: int = 20) -> list[NotificationSent]:
        """The workspace's latest alerts and their delivery state, newest first."""
        from spojit_engine.notify.outbox import recent

        workspace_id = self.workspace_id(workspace_id)
        limit = max(1, min(limit, self.settings.page_size_max))
        return [NotificationSent.of(r) for r in recent(self.sa_engine, workspace_id, limit=limit)]

    # -- billing: top-ups through Stripe Checkout ----------------------------------------------

    @cached_property
    def billing(self) -> Billing:
        """Checkout, the Stripe webhook and the success redirect; owns the Stripe client."""
        from spojit_engine.billing.service import Billing

        return Billing(self.ledger, self.settings, http_client=self._stripe_http_client)

    def topup(self, workspace_id: str, pack: str, *, by: str | None) -> CheckoutStarted:
        """Start buying ``pack``: a PENDING order and its Stripe Checkout Session (admins only;
        ``by=None`` is the local operator). Credits land when Stripe says it is paid."""
        return self.billing.start_topup(workspace_id, pack, by=by)

    def orders(self, workspace_id: str, *, limit: int = 50) -> list[TopupOrder]:
        """The workspace's top-up orders, newest first."""
        self.workspace_id(workspace_id)
        self._check_page(limit)
        return [TopupOrder.of(r) for r in self.billing.orders(workspace_id, limit=limit)]

    def handle_stripe_webhook(self, payload: bytes, signature: str | None) -> WebhookResult:
        """Verify a Stripe webhook on its raw body and act on it once."""
        return self.billing.handle_webhook(payload, signature)

    def fulfil_checkout(self, session_id: str) -> TopupOrder:
        """The success redirect: grant now if Stripe says the session is paid (at most once)."""
        return TopupOrder.of(self.billing.fulfil_session(session_id))

    def claw_back(
        self,
        workspace_id: str,
        amount: Decimal | int | str,
        *,
        grant_key: str,
        key: str,
        reason: str | None = None,
    ) -> Entry:
        """Take ``amount`` back from the grant ``grant_key`` (what is left of it first, then the
        workspace's other credits, then an overdraft); a repeated ``key`` returns the first."""
        from spojit_engine.metering.ledger.clawback import claw_back_grant

        record = claw_back_grant(
            self.ledger,
            workspace_id,
            grant_key=_check_key(grant_key),
            amount_ucr=credits_to_ucr_exact(amount),
            key=_check_key(key),
            reason=_reason(reason),
        )
        return Entry.of(record)

    # -- credit guards -------------------------------------------------------------------------

    def set_workflow_budget(
        self,
        workspace_id: str,
        workflow: str,
        *,
        max_credits_per_run: Decimal | int | str | None = None,
        max_credits_per_day: Decimal | int | str | None = None,
    ) -> WorkflowBudget | None:
        """Cap what one run, and one UTC day, of ``workflow`` may spend (both None: no caps).
        A raised cap resumes the workflow's schedules the guard paused for it."""
        from spojit_engine.guards.budgets import WorkflowBudget

        self.workspace_id(workspace_id)

        def ucr(value: Decimal | int | str | None) -> int | None:
            return None if value is None else credits_to_ucr_exact(value)

        budget = self.guard.budgets.set(
            workspace_id,
            _workflow(workflow),
            max_per_run_ucr=ucr(max_credits_per_run),
            max_per_day_ucr=ucr(max_credits_per_day),
        )
        self.guard.resume(workspace_id, scope=workflow)
        return None if budget is None else WorkflowBudget.of(budget)

    @contextmanager
    def watch_resumes(self) -> Iterator[ResumeWatch]:
        """What the guard resumed (deployment names) for credits added inside the block, and
        whether a resume is still pending (Prefect unreachable: ``spojit serve`` finishes it)."""
        with self.guard.watch() as watch:
            yield watch
        watch.resumed = self.guard.deployment_names(watch.resumed)

    def deploy(self, request: DeployRequest) -> Deployed:
        """A Prefect deployment of a workflow, bound to its workspace so the guard can pause and
        resume its schedules (and a webhook hook, when asked)."""
        from spojit_engine.guards.deployments.deploy import deploy_workflow

        return deploy_workflow(self.guard, request)

    def receive_webhook(self, workflow: str, secret: str | None, body: bytes) -> Receipt:
        """A workflow hook's request: checked against its secret, then started or queued."""
        hook = self.guard.hooks.authenticate(workflow, secret)
        return self.guard.hooks.receive(hook, body)

    def reconciler(self) -> Reconciler:
        """The background loop that finishes pending resumes and expiries (``spojit serve``)."""
        from spojit_engine.guards.deployments.reconciler import Reconciler

        return Reconciler(
            self.guard, interval_seconds=self.settings.guard_reconcile_interval_seconds
        )

    def deployments(self, workspace_id: str | None = None) -> list[DeploymentStatus]:
        """Deployments bound to a workspace (or to any): schedules, paused by whom and why."""
        from spojit_engine.guards.deployments.status import deployment_statuses

        return deployment_statuses(self.guard, workspace_id)

    def paused_work(self, workspace_id: str) -> list[PausedWork]:
        """What the credit guard has paused in the workspace and why (its records; no Prefect)."""
        from spojit_engine.guards.deployments.status import paused_work

        return paused_work(self.guard, workspace_id)

    # -- estimates and cost advice -------------------------------------------------------------

    @cached_property
    def _estimate_runtime(self) -> Runtime:
        from spojit_engine.metering.meter.runtime import Runtime

        return Runtime.create(self)

    def estimate(
        self, workspace_id: str | None, workflow: Workflow, *, items: int | None = None,
        inputs: Any = None, test: bool = False, sample: int | None = None,
    ) -> Estimate:  # fmt: skip
        """What one run of ``workflow`` will cost (typical, p95, max), from the workspace's
        history where there is some, else from its prompts and the price book; with advice.
        ``test``: a test run, its loops on ``sample`` items (else their ``test_sample``)."""
        from spojit_engine.estimation.estimator import estimate
        from spojit_engine.nodes.scope import RunScope

        RunScope.of(test=test, sample=sample)  # the run's own checks (estimation is below them)
        return estimate(self._estimate_runtime, workspace_id, workflow, items=items,
                        inputs=inputs, test=test, sample=sample)  # fmt: skip

    def advice(self, workspace_id: str, workflow: Workflow | str | None = None) -> list[Advice]:
        """Ways to spend less, per workflow (one workflow, by object or name, or all of them)."""
        from spojit_engine.estimation.estimator import advise

        return advise(self._estimate_runtime, workspace_id, workflow)

    # -- runs stopped for credits (guards/runs/incomplete.py, guards/runs/resume.py) -----------

    def incomplete_runs(
        self, workspace_id: str, *, include_done: bool = False, limit: int = 50
    ) -> list[IncompleteRun]:
        """Runs stopped part-way for credits, oldest first (``include_done``: also those
        resumed or abandoned)."""
        from spojit_engine.guards.runs import incomplete

        self.workspace_id(workspace_id)
        statuses = (
            tuple(incomplete.RunStatus) if include_done else (incomplete.RunStatus.INCOMPLETE,)
        )
        limit = max(1, min(limit, self.settings.page_size_max))
        return incomplete.listing(self.sa_engine, workspace_id, statuses=statuses, limit=limit)

    def incomplete_run(self, workspace_id: str, flow_run_id: str) -> IncompleteRun:
        """The incomplete run ``flow_run_id`` names (the original run, or one of its resumes)."""
        from spojit_engine.guards.runs import incomplete

        return incomplete.get(self.sa_engine, _run_id(flow_run_id), workspace_id)

    def resume_run(
        self, workspace_id: str, flow_run_id: str, *, workflow: Workflow | None = None
    ) -> ResumeStarted:
        """Resume a run stopped for credits from the node that was refused (once): a new run of
        its deployment, or ``workflow`` run here for a run made outside a deployment."""
        run_id = _run_id(flow_run_id)
        return self.guard.resumer.resume(workspace_id, run_id, workflow=workflow, host=self)

    def abandon_run(self, workspace_id: str, flow_run_id: str) -> IncompleteRun:
        """Give up an incomplete run: it never resumes."""
        from spojit_engine.guards.runs import incomplete

        run = incomplete.get(self.sa_engine, _run_id(flow_run_id), workspace_id)
        return incomplete.abandon(self.sa_engine, run, self.ledger.clock())
