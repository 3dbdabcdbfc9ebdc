"""One Settings object, read from the environment (prefix ``SPOJIT_``). Every limit lives here,
named with its unit, so the next person finds them in one place.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPOJIT_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".spojit")
    database_url: str | None = None
    llm_mode: Literal["live", "mock"] | None = None
    price_book: Path | None = None
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    # Where `spojit serve` is reached from a browser: Stripe Checkout returns there.
    public_url: str = "http://127.0.0.1:8000"

    # Limits (TigerBeetle: put a limit on everything).
    hold_ttl_seconds: int = Field(default=600, gt=0, le=7 * 24 * 3600)
    # A run reservation nobody closes (its process died) is voided by the sweeper after this.
    run_reservation_ttl_seconds: int = Field(default=6 * 3600, gt=0, le=7 * 24 * 3600)
    # Group commit of a reserved run's node charges (metering/meter/batch.py): a batch commits at
    # this many calls or this long after its first charge waits, whichever comes first. A crash
    # loses (never bills) at most that many waiting charges; it never overspends the reservation.
    batch_calls_max: int = Field(default=64, gt=0, le=10_000)
    batch_commit_ms: int = Field(default=200, gt=0, le=60_000)
    # Tag each node's Prefect task spojit:node-type=… / spojit:node=… (for tag concurrency
    # limits, e.g. on connector.agent); off by default: a tagged task costs an API round trip.
    node_task_tags: bool = False
    sqlite_busy_timeout_seconds: float = Field(default=60.0, gt=0)
    # A ledger operation is retried (same key) while its database is unreachable, for at most
    # this long: a PostgreSQL restart or failover takes seconds (metering/store/retry.py).
    ledger_retry_seconds_max: float = Field(default=30.0, ge=0, le=600)
    ledger_retry_backoff_seconds: float = Field(default=0.2, gt=0, le=10)
    renewal_catch_up_periods_max: int = Field(default=120, gt=0)
    sweep_holds_batch_max: int = Field(default=1000, gt=0)
    webhook_queue_max: int = Field(default=1000, gt=0)
    webhook_start_failures_max: int = Field(default=5, gt=0, le=100)  # then a dead letter
    request_body_max_bytes: int = Field(default=1024 * 1024, gt=0)
    # Every JSON body (API, workflow webhooks, Stripe): nesting of arrays/objects, and digits in
    # one number, checked on the raw bytes before parsing (jsonbody.py).
    json_depth_max: int = Field(default=64, ge=2, le=1000)
    json_number_digits_max: int = Field(default=100, ge=20, le=4000)
    loop_concurrency_max: int = Field(default=8, gt=0)
    page_size_max: int = Field(default=500, gt=0)
    page_offset_max: int = Field(default=10_000_000, ge=0, le=2**62)  # rows a page may skip
    timeline_days_max: int = Field(default=366, gt=0)  # days `spojit usage --timeline` spans
    # Notifications (spojit_engine/notify): a bounded queue of workspaces to evaluate, a
    # bounded batch per delivery pass, a timeout per delivery, retries with doubling backoff.
    notify_queue_max: int = Field(default=10_000, gt=0)
    notify_batch_max: int = Field(default=100, gt=0)
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    notify_attempts_max: int = Field(default=6, gt=0, le=50)
    notify_backoff_seconds: float = Field(default=5.0, gt=0, le=3600)
    notify_rules_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    notify_regression_runs_max: int = Field(default=100, gt=0)
    notify_allow_private_targets: bool = False  # webhooks to private hosts (notify/targets.py)
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0, le=3600)
    stripe_network_retries_max: int = Field(default=2, ge=0, le=10)
    # A repeated "Buy credits" within this gets the same open order and Checkout (Stripe's
    # sessions live 24 h, so it stays below that).
    topup_checkout_reuse_minutes: int = Field(default=60, gt=0, le=23 * 60)
    # Credit guards (spojit_engine/guards): leases serialise pausing and resuming across
    # processes; a cap set in one process applies in the others within budget_cache_seconds.
    guard_lease_seconds: int = Field(default=120, gt=0, le=3600)
    guard_lease_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    guard_lease_poll_seconds: float = Field(default=0.1, gt=0, le=10)
    guard_history_days: int = Field(default=30, gt=0)
    budget_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    renewals_interval_seconds: int = Field(default=300, ge=5, le=24 * 3600)
    # How often `spojit serve` finishes pending resumes, pauses and webhook queues.
    guard_reconcile_interval_seconds: float = Field(default=5.0, ge=0.2, le=3600)
    # Sign-in to the web pages (spojit_engine/signin): one-time links, then a browser session.
    login_link_ttl_minutes: int = Field(default=15, gt=0)
    login_link_ttl_minutes_max: int = Field(default=24 * 60, gt=0)
    browser_session_ttl_hours: int = Field(default=12, gt=0, le=24 * 30)
    signin_history_days: int = Field(default=30, gt=0)  # spent links and old sessions kept
    executions_page_size: int = Field(default=25, gt=0, le=200)  # runs per /executions page
    form_fields_max: int = Field(default=20, gt=0, le=1000)  # fields a page's form may POST
    # Estimates and the cost advisor (estimation/plans.py, estimation/advice.py): how much
    # history is read, and the assumptions a static estimate makes where a prompt is unknown.
    estimate_history_records_max: int = Field(default=5000, gt=0, le=1_000_000)
    estimate_loop_items_default: int = Field(default=10, gt=0)  # a loop whose items are unknown
    estimate_token_sample_items_max: int = Field(default=20, gt=0, le=1000)  # prompts counted
    estimate_output_tokens_typical: int = Field(default=100, gt=0)  # per LLM call, capped by max
    estimate_input_tokens_unknown: int = Field(default=200, ge=0)  # an input known only at run
    estimate_tool_exchange_tokens: int = Field(default=100, ge=0)  # each earlier agent round trip
    estimate_passage_tokens: int = Field(default=200, ge=0)  # each Knowledge passage in a prompt
    advice_direct_mode_share_percent: int = Field(default=90, gt=0, le=100)
    advice_history_calls_min: int = Field(default=3, gt=0)  # calls before history is advice
    advice_savings_percent_min: int = Field(default=5, ge=0, le=100)  # of a node call, to speak
    advice_workflows_max: int = Field(default=100, gt=0)  # workflows `Engine.advice` looks at
    # Runs stopped for credits (guards/runs/incomplete.py): how long a node's persisted result stays
    # readable by a resume of its run (after that a resume runs the node again, replaying its
    # metering keys so it is not billed twice).
    resume_window_days: int = Field(default=30, gt=0, le=3650)
    work_pool: str = "spojit"  # the Prefect work pool `spojit deploy` targets

    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'spojit.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
