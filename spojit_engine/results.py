"""What the ``Engine`` hands back: the ledger's records with credits as ``Decimal``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from spojit_engine.billing.orders import OrderRecord
from spojit_engine.metering.executions import ExecutionRecord
from spojit_engine.metering.money import ucr_to_credits
from spojit_engine.metering.records import EntryRecord, GrantRecord, HoldRecord
from spojit_engine.metering.reports import BalanceRecord, BreakdownRecord

T = TypeVar("T")


def _view(cls: type[T], record: Any, **renamed: str) -> T:
    """``cls`` built from a record, field by field: ``name`` reads ``record.name`` (or the
    field ``renamed`` names); a record's ``name_ucr`` becomes credits (``Decimal``; None stays
    None). One rule for every result, so a field added to both sides needs no code."""
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        source = renamed.get(f.name, f.name)
        if hasattr(record, f"{source}_ucr"):
            ucr = getattr(record, f"{source}_ucr")
            values[f.name] = None if ucr is None else ucr_to_credits(ucr)
        else:
            values[f.name] = getattr(record, source)
    return cls(**values)


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
        return _view(cls, r)


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
        return _view(cls, r)


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
    granted_by: str | None  # a member id, "operator", "stripe" or "plan"
    reason: str | None

    @classmethod
    def of(cls, r: GrantRecord) -> Grant:
        return _view(cls, r)


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
        return _view(
            cls, r, workspace="workspace_name", plan="plan_id", pending_plan="pending_plan_id"
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
        return _view(cls, r)


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
    flagged: bool  # paid another amount than the price; credits follow what was paid

    @classmethod
    def of(cls, r: OrderRecord) -> TopupOrder:
        return _view(cls, r, pack="pack_id")
