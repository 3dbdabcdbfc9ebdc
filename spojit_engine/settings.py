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
    sqlite_busy_timeout_seconds: float = Field(default=60.0, gt=0)
    # A ledger operation is retried (same key) while its database is unreachable, for at most
    # this long: a PostgreSQL restart or failover takes seconds (metering/retry.py).
    ledger_retry_seconds_max: float = Field(default=30.0, ge=0, le=600)
    ledger_retry_backoff_seconds: float = Field(default=0.2, gt=0, le=10)
    renewal_catch_up_periods_max: int = Field(default=120, gt=0)
    sweep_holds_batch_max: int = Field(default=1000, gt=0)
    webhook_queue_max: int = Field(default=1000, gt=0)
    request_body_max_bytes: int = Field(default=1024 * 1024, gt=0)
    loop_concurrency_max: int = Field(default=8, gt=0)
    page_size_max: int = Field(default=500, gt=0)
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0, le=3600)
    stripe_network_retries_max: int = Field(default=2, ge=0, le=10)
    # Credit guards (spojit_engine/guards): leases serialise pausing and resuming across
    # processes; a cap set in one process applies in the others within budget_cache_seconds.
    guard_lease_seconds: int = Field(default=120, gt=0, le=3600)
    guard_lease_wait_seconds: float = Field(default=30.0, ge=0, le=600)
    guard_lease_poll_seconds: float = Field(default=0.1, gt=0, le=10)
    guard_history_days: int = Field(default=30, gt=0)
    budget_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    renewals_interval_seconds: int = Field(default=300, ge=5, le=24 * 3600)
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
