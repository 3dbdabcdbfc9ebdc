"""What the ``Engine`` hands back: the ledger's records with credits as ``Decimal``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spojit_engine.metering.money import ucr_to_credits

if TYPE_CHECKING:  # records only: importing them here would pull in SQLAlchemy for every reader
    from spojit_engine.billing.orders import OrderRecord
    from spojit_engine.metering.card import BalanceRecord
    from spojit_engine.metering.executions import ExecutionRecord
    from spojit_engine.metering.records import EntryRecord, GrantRecord, HoldRecord
    from spojit_engine.metering.reports import BreakdownRecord


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    plan: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger operation. ``amount`` is its signed change to the workspace's credits (a debit
    of 1.5 is -1.5); ``held`` its change to credits on hold; ``overdraft`` what it left unpaid."""

    id: int
    workspace_id: str
    key: str
    kind: str
    amount: Decimal
    held: Decimal
    overdraft: Decimal
    created_at: datetime
    replayed: bool

    @classmethod
    def of(cls, r: EntryRecord) -> Entry:
        return cls(
            r.id,
            r.workspace_id,
            r.key,
            r.kind,
            ucr_to_credits(r.amount_ucr),
            ucr_to_credits(r.held_ucr),
            ucr_to_credits(r.overdraft_ucr),
            r.created_at,
            r.replayed,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    workspace_id: str
    key: str
    amount: Decimal
    state: str
    expires_at: datetime
    settled: Decimal | None
    replayed: bool

    @classmethod
    def of(cls, r: HoldRecord) -> Hold:
        settled = None if r.settled_ucr is None else ucr_to_credits(r.settled_ucr)
        return cls(
            r.id,
            r.workspace_id,
            r.key,
            ucr_to_credits(r.amount_ucr),
            r.state,
            r.expires_at,
            settled,
            r.replayed,
        )


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    key: str
    kind: str
    amount: Decimal
    remaining: Decimal
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    replayed: bool

    @classmethod
    def of(cls, r: GrantRecord) -> Grant:
        return cls(
            r.id,
            r.key,
            r.kind,
            ucr_to_credits(r.amount_ucr),
            ucr_to_credits(r.remaining_ucr),
            r.priority,
            r.effective_at,
            r.expires_at,
            r.replayed,
        )


@dataclass(frozen=True, slots=True)
class Balance:
    """The "Usage this period" card. ``remaining`` is what new work may still spend:
    allowance + top-ups + other grants - held - overdraft."""

    workspace_id: str
    workspace: str
    plan: str
    pending_plan: str | None
    consumed: Decimal
    remaining: Decimal
    allowance_remaining: Decimal
    topup_remaining: Decimal
    other_remaining: Decimal
    held: Decimal
    overdraft: Decimal
    period_start: datetime
    resets_at: datetime

    @classmethod
    def of(cls, r: BalanceRecord) -> Balance:
        c = ucr_to_credits
        return cls(
            r.workspace_id,
            r.workspace_name,
            r.plan_id,
            r.pending_plan_id,
            c(r.consumed_ucr),
            c(r.remaining_ucr),
            c(r.allowance_remaining_ucr),
            c(r.topup_remaining_ucr),
            c(r.other_remaining_ucr),
            c(r.held_ucr),
            c(r.overdraft_ucr),
            r.period_start,
            r.resets_at,
        )


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    workflow: str | None
    node_type: str | None
    member: str | None
    test_run: bool
    credits: Decimal
    calls: int

    @classmethod
    def of(cls, r: BreakdownRecord) -> BreakdownRow:
        def text(name: str) -> str | None:
            value = r.dimensions.get(name)
            return None if value is None else str(value)

        return cls(
            text("workflow"),
            text("node_type"),
            text("member"),
            bool(r.dimensions["test_run"]),
            ucr_to_credits(r.credits_ucr),
            r.calls,
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """One flow run as Executions lists it: grouped from its usage records."""

    flow_run_id: str
    workflow: str | None
    started_at: datetime
    finished_at: datetime
    status: str  # ok, failed, out of credits
    test_run: bool
    member_id: str | None
    node_calls: int
    credits: Decimal

    @classmethod
    def of(cls, r: ExecutionRecord) -> Execution:
        return cls(
            r.flow_run_id,
            r.workflow,
            r.started_at,
            r.finished_at,
            r.status,
            r.test_run,
            r.member_id,
            r.node_calls,
            ucr_to_credits(r.credits_ucr),
        )


@dataclass(frozen=True, slots=True)
class TopupOrder:
    """One top-up order: its pack, price, state and what refunds or disputes took back."""

    id: str
    workspace_id: str
    member_id: str | None
    pack: str
    credits: Decimal
    amount_cents: int
    currency: str
    state: str  # pending, paid, failed, expired, refunded, disputed
    session_id: str | None
    checkout_url: str | None
    refunded_cents: int
    dispute_status: str | None
    clawed_back: Decimal
    detail: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: OrderRecord) -> TopupOrder:
        return cls(
            r.id,
            r.workspace_id,
            r.member_id,
            r.pack_id,
            ucr_to_credits(r.credits_ucr),
            r.amount_cents,
            r.currency,
            r.state,
            r.session_id,
            r.checkout_url,
            r.refunded_cents,
            r.dispute_status,
            ucr_to_credits(r.clawed_back_ucr),
            r.detail,
            r.created_at,
            r.updated_at,
        )
