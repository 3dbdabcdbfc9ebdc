"""Where the ledger is kept: the tables (SQLModel; Alembic creates them), the hot path's driver
SQL, usage records, and the retry of a keyed operation while the database restarts.
See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "Statements",
    "UsageRow",
    "insert_rows",
    "mark_status",
    "read_usage",
    "record_usage",
    "retry_unavailable",
    "rewrite_row",
    "schema",
    "statements_for",
    "usage_totals",
    "usage_transaction",
]
__getattr__ = exports(
    __name__,
    {
        "Statements": "spojit_engine.metering.store.statements",
        "UsageRow": "spojit_engine.metering.store.usage",
        "insert_rows": "spojit_engine.metering.store.usage_writes",
        "read_usage": "spojit_engine.metering.store.usage",
        "mark_status": "spojit_engine.metering.store.usage",
        "record_usage": "spojit_engine.metering.store.usage",
        "retry_unavailable": "spojit_engine.metering.store.retry",
        "rewrite_row": "spojit_engine.metering.store.usage_writes",
        "schema": "spojit_engine.metering.store.schema",
        "statements_for": "spojit_engine.metering.store.statements",
        "usage_totals": "spojit_engine.metering.store.usage",
        "usage_transaction": "spojit_engine.metering.store.usage",
    },
)
