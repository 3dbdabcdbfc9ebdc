"""The guards' tables, as SQLAlchemy Core (migration ``0003_guards`` creates them). Times are
stored as naive UTC and read back UTC-aware, like the ledger's."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

from spojit_engine.metering.store.schema import KEY_LENGTH_MAX, UTCDateTime

WORKSPACE_SCOPE = ""  # guard_states.scope of the whole workspace; else a workflow's name

metadata = MetaData()

deployment_bindings = Table(
    "deployment_bindings",
    metadata,
    Column("deployment_id", String(36), primary_key=True),
    Column("workspace_id", String(32), nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("deployment_name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

guard_states = Table(
    "guard_states",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("scope", String(128), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("cause", String(16)),
    Column("reason", Text),
    Column("needed_ucr", BigInteger),
    Column("since", UTCDateTime()),
    Column("until", UTCDateTime()),
    Column("pauses_applied_at", UTCDateTime()),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
)

guard_pauses = Table(
    "guard_pauses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False),
    Column("scope", String(128), nullable=False),
    Column("deployment_id", String(36), nullable=False),
    Column("schedule_id", String(36), nullable=False),
    Column("workflow", String(128)),
    Column("reason", Text, nullable=False),
    Column("paused_at", UTCDateTime(), nullable=False),
    Column("schedule_updated_at", UTCDateTime()),
    Column("resumed_at", UTCDateTime()),
    Column("outcome", String(32)),
)

workflow_hooks = Table(
    "workflow_hooks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("workflow", String(128), nullable=False),
    Column("workspace_id", String(32), nullable=False),
    Column("deployment_id", String(36), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime()),
)

webhook_queue = Table(
    "webhook_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook", String(128), nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("workspace_id", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("queued_reason", Text),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("flow_run_id", String(36)),
    # 0012_hardening: the random key its runs' idempotency keys are made of (None: queued before
    # it, keyed by id), failed starts counted, and why it became a dead letter.
    Column("run_key", String(32)),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("error", Text),
)

workflow_budgets = Table(
    "workflow_budgets",
    metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("workflow", String(128), primary_key=True),
    Column("max_credits_per_run_ucr", BigInteger),
    Column("max_credits_per_day_ucr", BigInteger),
    Column("updated_at", UTCDateTime(), nullable=False),
)

guard_run_spends = Table(
    "guard_run_spends",
    metadata,
    Column("key", String(KEY_LENGTH_MAX), primary_key=True),
    Column("flow_run_id", String(36), nullable=False),
    Column("workspace_id", String(32), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Runs stopped for credits part-way (guards/runs/incomplete.py): one row per original run, kept
# until it is resumed (each attempt claimed once) or abandoned.
incomplete_runs = Table(
    "incomplete_runs",
    metadata,
    Column("flow_run_id", String(36), primary_key=True),  # the original run
    Column("workspace_id", String(32), nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("deployment_id", String(36)),
    Column("trigger", String(16), nullable=False),
    Column("parameters", Text, nullable=False),  # JSON
    Column("tags", Text, nullable=False),  # JSON list: the original run's tags
    Column("source", Text),  # where a run made outside a deployment loads its workflow from
    Column("refused_node", String(128)),
    Column("reason", Text, nullable=False),
    Column("needed_ucr", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),  # resumes claimed so far
    Column("last_flow_run_id", String(36), nullable=False),  # the run refused last
    Column("resumed_flow_run_id", String(36)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
