"""The credit ledger and what meters it, in layers from the bottom: ``core`` (pure rules: money
units, burn order, periods, hold states, prices, the catalog), ``store`` (tables, driver SQL,
retries), ``ledger`` (the one writer of money and the operations it composes), ``reads`` (the
card, breakdown, timeline, executions, verify) and ``meter`` (a node call's metering: the
decorator, the meter, the run context, group commit). See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "core",
    "ledger",
    "meter",
    "reads",
    "store",
]
__getattr__ = exports(
    __name__,
    {
        "core": "spojit_engine.metering.core",
        "ledger": "spojit_engine.metering.ledger",
        "meter": "spojit_engine.metering.meter",
        "reads": "spojit_engine.metering.reads",
        "store": "spojit_engine.metering.store",
    },
)
