"""A node call's metering: ``@metered`` and ``node_call`` (base debit and usage record), the
meter an LLM call reports to (hold, then settle), the one adapter to Prefect's run context, the
runtime a node bills through, and group commit of a reserved run's charges. See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "Meter",
    "RunBatch",
    "RunInfo",
    "Runtime",
    "RuntimeHost",
    "TriggerKind",
    "billing_for",
    "classify",
    "commit_all",
    "commit_run",
    "current_meter",
    "current_run",
    "current_runtime",
    "forget_run",
    "metered",
    "node_call",
    "provide_default_host",
    "use_runtime",
]
__getattr__ = exports(
    __name__,
    {
        "Meter": "spojit_engine.metering.meter.node_meter",
        "RunBatch": "spojit_engine.metering.meter.batch",
        "RunInfo": "spojit_engine.metering.meter.run_context",
        "Runtime": "spojit_engine.metering.meter.runtime",
        "RuntimeHost": "spojit_engine.metering.meter.runtime",
        "TriggerKind": "spojit_engine.metering.meter.run_context",
        "billing_for": "spojit_engine.metering.meter.run_billing",
        "classify": "spojit_engine.metering.meter.run_context",
        "commit_all": "spojit_engine.metering.meter.batch",
        "commit_run": "spojit_engine.metering.meter.batch",
        "current_meter": "spojit_engine.metering.meter.node_meter",
        "current_run": "spojit_engine.metering.meter.run_context",
        "current_runtime": "spojit_engine.metering.meter.runtime",
        "forget_run": "spojit_engine.metering.meter.run_billing",
        "metered": "spojit_engine.metering.meter.decorator",
        "node_call": "spojit_engine.metering.meter.decorator",
        "provide_default_host": "spojit_engine.metering.meter.runtime",
        "use_runtime": "spojit_engine.metering.meter.runtime",
    },
)
