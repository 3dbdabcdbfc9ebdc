"""Plain result records the ledger hands out (µcr inside; the Engine converts at the surface)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Lower numbers burn first: promotional credits, then the plan allowance, then adjustments,
# then bought top-ups (they last longest, and a customer paid for them).
DEFAULT_PRIORITY = {"promo": 0, "allowance": 10, "adjustment": 20, "topup": 30}
GRANT_KINDS = frozenset(DEFAULT_PRIORITY)
USAGE_KINDS = ("debit", "settle")


@dataclass(frozen=True, slots=True)
class Account:
    """A workspace's ledger row, read under its lock."""

    id: str
    name: str
    plan_id: str
    pending_plan_id: str | None
    anchor_at: datetime
    period_start: datetime
    period_end: datetime
    next_due_at: datetime
    credits_ucr: int
    held_ucr: int
    overdraft_ucr: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Who and what a debit is for: the dimensions of the breakdown."""

    workflow: str | None = None
    node_type: str | None = None
    member_id: str | None = None
    test_run: bool = False
    node_call: str | None = None  # the metered node call this belongs to (one "call" in reports)


@dataclass(frozen=True, slots=True)
class EntryRecord:
    id: int
    workspace_id: str
    key: str
    kind: str
    amount_ucr: int
    held_ucr: int
    overdraft_ucr: int
    created_at: datetime
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class HoldRecord:
    id: int
    workspace_id: str
    key: str
    amount_ucr: int
    state: str
    expires_at: datetime
    settled_ucr: int | None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: int
    workspace_id: str
    key: str
    kind: str
    amount_ucr: int
    remaining_ucr: int
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    replayed: bool = False
    granted_by: str | None = None  # a member id, "operator", "stripe" or "plan"
    reason: str | None = None
