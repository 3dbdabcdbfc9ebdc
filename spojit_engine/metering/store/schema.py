"""The ledger's tables, declared once with SQLModel; Alembic migrations create them.

Invariants the database itself enforces: UNIQUE idempotency keys on entries and grants;
``0 <= grants.remaining_ucr <= grants.amount_ucr``; ``held_ucr >= 0``; ``overdraft_ucr >= 0``.
The hot paths use the Core tables (``Grant.__table__``) for speed; reads may use the classes.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from spojit_engine.metering.core.records import GrantRecord

KEY_LENGTH_MAX = 200
NAME_LENGTH_MAX = 64
RUN_NAME_LENGTH_MAX = 128  # Prefect's generated names ("crimson-otter") are far shorter
WORKFLOW_LENGTH_MAX = NAME_LENGTH_MAX * 2  # workflow and node names
ID_LENGTH_MAX = 32  # our ids: ws_…, mem_…
RUN_ID_LENGTH_MAX = 36  # a Prefect flow or task run's UUID
REASON_LENGTH_MAX = 500  # why credits were granted or clawed back (kept as text)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (text on SQLite, ``timestamp`` on PostgreSQL); read back UTC-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def column(type_: Any, *args: Any, **kwargs: Any) -> Any:
    """A SQLModel field on a NOT NULL column unless ``nullable=True`` (every schema uses it)."""
    kwargs.setdefault("nullable", False)
    return Field(sa_column=Column(type_, *args, **kwargs))


class Workspace(SQLModel, table=True):
    """A workspace is also its ledger account: this row is the lock and the materialised balance."""

    __tablename__: ClassVar[str] = "workspaces"
    __table_args__ = (
        CheckConstraint("held_ucr >= 0", name="ck_workspaces_held_nonneg"),
        CheckConstraint("overdraft_ucr >= 0", name="ck_workspaces_overdraft_nonneg"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    name: str = column(String(NAME_LENGTH_MAX), unique=True)
    plan_id: str = column(String(32))
    pending_plan_id: str | None = column(String(32), nullable=True)
    anchor_at: datetime = column(UTCDateTime())
    period_start: datetime = column(UTCDateTime())
    period_end: datetime = column(UTCDateTime())
    next_due_at: datetime = column(UTCDateTime())
    credits_ucr: int = column(BigInteger, default=0)
    held_ucr: int = column(BigInteger, default=0)
    overdraft_ucr: int = column(BigInteger, default=0)
    created_at: datetime = column(UTCDateTime())


class Member(SQLModel, table=True):
    __tablename__: ClassVar[str] = "members"
    __table_args__ = (UniqueConstraint("workspace_id", "email", name="uq_members_workspace_email"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    email: str = column(String(254))
    role: str = column(String(16))
    token_hash: str = column(String(64), unique=True)
    created_at: datetime = column(UTCDateTime())


class Grant(SQLModel, table=True):
    """A block of credits. ``remaining_ucr`` equals the sum of its postings (checked by verify)."""

    __tablename__: ClassVar[str] = "grants"
    __table_args__ = (
        CheckConstraint("amount_ucr > 0", name="ck_grants_amount_positive"),
        CheckConstraint(
            "remaining_ucr >= 0 AND remaining_ucr <= amount_ucr", name="ck_grants_remaining_range"
        ),
        # Not on remaining_ucr: a debit's update of it stays HOT on PostgreSQL (migration 0011).
        Index("ix_grants_workspace", "workspace_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    key: str = column(String(KEY_LENGTH_MAX), unique=True)
    kind: str = column(String(16))
    amount_ucr: int = column(BigInteger)
    remaining_ucr: int = column(BigInteger)
    priority: int = column(Integer)
    effective_at: datetime = column(UTCDateTime())
    expires_at: datetime | None = column(UTCDateTime(), nullable=True)
    created_at: datetime = column(UTCDateTime())
    # Who granted it (a member id, "operator", "stripe", "plan") and why (migration 0009).
    granted_by: str | None = column(String(64), nullable=True)
    reason: str | None = column(Text, nullable=True)


class Hold(SQLModel, table=True):
    __tablename__: ClassVar[str] = "holds"
    __table_args__ = (
        CheckConstraint("amount_ucr > 0", name="ck_holds_amount_positive"),
        Index("ix_holds_state_expires", "state", "expires_at"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    key: str = column(String(KEY_LENGTH_MAX), unique=True)
    amount_ucr: int = column(BigInteger)
    state: str = column(String(16))
    expires_at: datetime = column(UTCDateTime())
    settled_ucr: int | None = column(BigInteger, nullable=True)
    workflow: str | None = column(String(NAME_LENGTH_MAX * 2), nullable=True)
    node_type: str | None = column(String(NAME_LENGTH_MAX), nullable=True)
    member_id: str | None = column(String(32), nullable=True)
    test_run: bool = column(Boolean, default=False)
    node_call: str | None = column(String(KEY_LENGTH_MAX), nullable=True)
    created_at: datetime = column(UTCDateTime())


class Entry(SQLModel, table=True):
    """One ledger operation, append-only. ``amount_ucr`` is its change to the workspace's credits,
    ``held_ucr`` its change to the credits on hold; both signed."""

    __tablename__: ClassVar[str] = "entries"
    __table_args__ = (Index("ix_entries_workspace_created", "workspace_id", "created_at"),)

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    key: str = column(String(KEY_LENGTH_MAX), unique=True)
    kind: str = column(String(16))
    amount_ucr: int = column(BigInteger)
    held_ucr: int = column(BigInteger, default=0)
    grant_id: int | None = column(Integer, ForeignKey("grants.id"), nullable=True)
    hold_id: int | None = column(Integer, ForeignKey("holds.id"), nullable=True)
    workflow: str | None = column(String(NAME_LENGTH_MAX * 2), nullable=True)
    node_type: str | None = column(String(NAME_LENGTH_MAX), nullable=True)
    member_id: str | None = column(String(32), nullable=True)
    test_run: bool = column(Boolean, default=False)
    node_call: str | None = column(String(KEY_LENGTH_MAX), nullable=True)
    reason: str | None = column(Text, nullable=True)
    created_at: datetime = column(UTCDateTime())


class Posting(SQLModel, table=True):
    """One entry's movement on one grant; ``grant_id`` NULL is the overdraft account."""

    __tablename__: ClassVar[str] = "postings"
    __table_args__ = (
        Index("ix_postings_entry", "entry_id"),
        Index("ix_postings_grant", "grant_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    entry_id: int = column(Integer, ForeignKey("entries.id"))
    # Its entry's workspace: PostgreSQL partitions postings by it (migration 0013).
    workspace_id: str = column(String(32))
    grant_id: int | None = column(Integer, ForeignKey("grants.id"), nullable=True)
    amount_ucr: int = column(BigInteger)


class UsageRecord(SQLModel, table=True):
    """One metered node call: what ran, where, for whom, and what it cost (µcr and tokens)."""

    __tablename__: ClassVar[str] = "usage_records"
    __table_args__ = (
        Index("ix_usage_workspace_created", "workspace_id", "created_at"),
        Index("ix_usage_flow_run", "flow_run_id"),
        Index("ix_usage_workspace_run", "workspace_id", "flow_run_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    key: str = column(String(KEY_LENGTH_MAX), unique=True)
    workspace_id: str = column(String(32), ForeignKey("workspaces.id"))
    workflow: str | None = column(String(NAME_LENGTH_MAX * 2), nullable=True)
    flow_run_id: str | None = column(String(36), nullable=True)
    run_name: str | None = column(String(RUN_NAME_LENGTH_MAX), nullable=True)
    trigger: str | None = column(String(16), nullable=True)
    task_run_id: str | None = column(String(36), nullable=True)
    attempt: int = column(Integer)
    node_name: str = column(String(NAME_LENGTH_MAX * 2))
    node_type: str = column(String(NAME_LENGTH_MAX))
    mode: str | None = column(String(32), nullable=True)
    models: str | None = column(Text, nullable=True)
    tools: str | None = column(Text, nullable=True)  # the tools an agent call chose, in order
    tokens_in: int = column(BigInteger, default=0)
    tokens_out: int = column(BigInteger, default=0)
    tokens_cached: int = column(BigInteger, default=0)
    llm_calls: int = column(Integer, default=0)
    credits_ucr: int = column(BigInteger)
    member_id: str | None = column(String(32), nullable=True)
    test_run: bool = column(Boolean, default=False)
    status: str = column(String(16))
    error: str | None = column(Text, nullable=True)
    created_at: datetime = column(UTCDateTime())


workspaces = Workspace.__table__  # type: ignore[attr-defined]
members = Member.__table__  # type: ignore[attr-defined]
grants = Grant.__table__  # type: ignore[attr-defined]
holds = Hold.__table__  # type: ignore[attr-defined]
entries = Entry.__table__  # type: ignore[attr-defined]
postings = Posting.__table__  # type: ignore[attr-defined]
usage_records = UsageRecord.__table__  # type: ignore[attr-defined]
metadata = SQLModel.metadata

# The columns a GrantRecord is read from, in its field order (a replay and a report read the same).
GRANT_RECORD_COLUMNS = tuple(grants.c[f.name] for f in fields(GrantRecord) if f.name != "replayed")
