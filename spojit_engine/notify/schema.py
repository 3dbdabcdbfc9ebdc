"""The notification tables: rules, and the outbox of alerts (``key`` UNIQUE: one alert, once)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Numeric, String, Table, Text

from spojit_engine.metering.store import schema

RULE_KINDS = ("thresholds", "run_above", "regression")
CHANNELS = ("webhook", "block")
OUTBOX_STATES = ("pending", "sending", "sent", "failed")
TARGET_LENGTH_MAX = 2048  # a URL, or a Prefect block's TYPE/NAME

notification_rules = Table(
    "notification_rules",
    schema.metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("workflow", String(schema.WORKFLOW_LENGTH_MAX), nullable=True),
    Column("limit_ucr", BigInteger, nullable=True),  # run_above: credits per run
    Column("factor", Numeric(10, 3), nullable=True),  # regression: k x the median
    Column("runs", Integer, nullable=True),  # regression: over the last N live runs
    Column("channel", String(16), nullable=False),
    Column("target", String(TARGET_LENGTH_MAX), nullable=False),
    Column("created_at", schema.UTCDateTime(), nullable=False),
    Index("ix_notification_rules_workspace", "workspace_id"),
)

notification_outbox = Table(
    "notification_outbox",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(schema.KEY_LENGTH_MAX), nullable=False, unique=True),
    Column("rule_id", String(32), nullable=False),
    Column("workspace_id", String(32), ForeignKey("workspaces.id"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", schema.UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", schema.UTCDateTime(), nullable=False),
    Column("sent_at", schema.UTCDateTime(), nullable=True),
    Index("ix_notification_outbox_due", "state", "next_attempt_at"),
)
