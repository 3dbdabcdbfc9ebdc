"""What the ``Engine`` hands back: the ledger's records with credits as ``Decimal``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from spojit_engine.money import ucr_to_credits

if TYPE_CHECKING:  # records only: importing them here would pull in SQLAlchemy for every reader
    from spojit_engine.accounts import MemberRecord
    from spojit_engine.billing.orders import OrderRecord
    from spojit_engine.metering.core.records import EntryRecord, GrantRecord, HoldRecord
    from spojit_engine.metering.reads.card import BalanceRecord
    from spojit_engine.metering.reads.executions import (
        ExecutionDetailRecord,
        ExecutionRecord,
        NodeRecord,
    )
    from spojit_engine.metering.reads.reports import BreakdownRecord
    from spojit_engine.metering.reads.timeline import Driver, TimelineDayRecord
    from spojit_engine.notify.outbox import OutboxRow
    from spojit_engine.notify.rules import RuleRecord
    from spojit_engine.signin.links import SessionRecord

T = TypeVar("T")

# Who ran a run no member started — the local operator's CLI, or a schedule or webhook the
# operator deployed: one word on every listing (CLI, pages).
OPERATOR = "operator"


def run_label(test_run: bool) -> str:
    """Test or live, as every listing says it: the CLI, the API's ``run``, the pages."""
    return "test" if test_run else "live"


def member_label(member_id: str | None, emails: Mapping[str, str]) -> str:
    """Who ran it, as every listing says it: the member's email (a removed member's id), or
    ``operator`` for a run no member started."""
    return emails.get(member_id, member_id) if member_id else OPERATOR


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

    def label(self, dimension: str, emails: Mapping[str, str]) -> str:
        """The row's ``dimension`` as every listing shows it (the CLI's and the page's): test
        or live, who ran it (``member_label``), the workflow or node type."""
        if dimension == "test_run":
            return run_label(self.test_run)
        if dimension == "member":
            return member_label(self.member, emails)
        return getattr(self, dimension) or "(outside any workflow)"

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
class TimelineDay:
    """One UTC day of a period: what it consumed, and what drove it (the workflow, node type and
    models that took the most credits that day, with their credits; None when nothing did)."""

    day: date
    credits: Decimal
    calls: int
    workflow: str | None
    workflow_credits: Decimal | None
    node_type: str | None
    node_type_credits: Decimal | None
    model: str | None
    model_credits: Decimal | None

    @classmethod
    def of(cls, r: TimelineDayRecord) -> TimelineDay:
        def named(d: Driver | None) -> tuple[str | None, Decimal | None]:
            return (None, None) if d is None else (d.name, ucr_to_credits(d.credits_ucr))

        return cls(
            r.day,
            ucr_to_credits(r.credits_ucr),
            r.calls,
            *named(r.workflow),
            *named(r.node_type),
            *named(r.model),
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
    run_name: str | None  # Prefect's flow run name
    trigger: str | None  # schedule, webhook, automation, manual, test

    @classmethod
    def of(cls, r: ExecutionRecord) -> Execution:
        return _view(cls, r)


@dataclass(frozen=True, slots=True)
class ExecutionNode:
    """One node of a run: its calls (retries included), tokens, models and exact credits."""

    name: str
    node_type: str
    calls: int
    llm_calls: int
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    models: tuple[str, ...]
    credits: Decimal
    status: str
    error: str | None

    @classmethod
    def of(cls, r: NodeRecord) -> ExecutionNode:
        return cls(
            r.node_name,
            r.node_type,
            r.calls,
            r.llm_calls,
            r.tokens_in,
            r.tokens_out,
            r.tokens_cached,
            r.models,
            ucr_to_credits(r.credits_ucr),
            r.status,
            r.error,
        )


@dataclass(frozen=True, slots=True)
class ExecutionDetail:
    """One run and its nodes; the nodes' credits add up to the run's."""

    run: Execution
    nodes: list[ExecutionNode]

    @classmethod
    def of(cls, r: ExecutionDetailRecord) -> ExecutionDetail:
        return cls(Execution.of(r.run), [ExecutionNode.of(n) for n in r.nodes])


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


@dataclass(frozen=True, slots=True)
class LoginLink:
    """A one-time sign-in link for the web pages; the token in it is shown only here."""

    url: str
    expires_at: datetime
    member_id: str
    email: str


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A signed-in browser: ``token`` is its cookie; each of its forms carries ``csrf_token``."""

    token: str
    member: MemberRecord
    expires_at: datetime
    csrf_token: str

    @classmethod
    def of(cls, r: SessionRecord) -> BrowserSession:
        return cls(r.token, r.member, r.expires_at, r.csrf_token)


@dataclass(frozen=True, slots=True)
class NotificationRule:
    """A notification rule: workspace ``thresholds`` (75/90/100 %, out of credits, resumed),
    ``run_above`` a credit limit, or a ``regression`` (above ``factor`` x the median of the
    workflow's last ``runs`` live runs); sent to a ``webhook`` URL or a Prefect ``block``."""

    id: str
    workspace_id: str
    kind: str
    workflow: str | None
    above: Decimal | None
    factor: Decimal | None
    runs: int | None
    channel: str
    target: str
    created_at: datetime

    @classmethod
    def of(cls, r: RuleRecord) -> NotificationRule:
        above = None if r.limit_ucr is None else ucr_to_credits(r.limit_ucr)
        factor = None if r.factor is None else Decimal(r.factor)
        return cls(r.id, r.workspace_id, r.kind, r.workflow, above, factor, r.runs, r.channel,
                   r.target, r.created_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NotificationSent:
    """An alert in the outbox: ``state`` pending, sending, sent or failed (after its retries)."""

    id: int
    rule_id: str
    event: str
    subject: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, r: OutboxRow) -> NotificationSent:
        return cls(r.id, r.rule_id, r.event, str(r.message.get("subject", "")), r.state,
                   r.attempts, r.last_error, r.created_at, r.sent_at)  # fmt: skip
