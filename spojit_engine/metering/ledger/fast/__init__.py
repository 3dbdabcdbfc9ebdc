"""The common debit in the fewest driver steps: PostgreSQL's one-call ``spojit_debit`` and SQLite's
debit on a session of its own. Each answers only the common case and hands every other back to
the Python path having written nothing. See ../README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "DebitRequest",
    "FastDebit",
    "OwnSessions",
    "PgDebit",
    "SqliteDebit",
]
__getattr__ = exports(
    __name__,
    {
        "DebitRequest": "spojit_engine.metering.ledger.fast.base",
        "FastDebit": "spojit_engine.metering.ledger.fast.base",
        "OwnSessions": "spojit_engine.metering.ledger.fast.base",
        "PgDebit": "spojit_engine.metering.ledger.fast.postgres",
        "SqliteDebit": "spojit_engine.metering.ledger.fast.sqlite",
    },
)
