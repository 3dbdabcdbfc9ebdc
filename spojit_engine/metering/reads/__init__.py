"""The ledger read back: the usage card (over SQLAlchemy or the bare driver), grants, the
breakdown and timeline from the daily rollups, Executions, and ``verify``. See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "BREAKDOWN_DIMENSIONS",
    "BalanceRecord",
    "BreakdownRecord",
    "ExecutionDetailRecord",
    "ExecutionRecord",
    "TimelineDayRecord",
    "balance_of",
    "quick_balance",
    "read_balance",
    "read_breakdown",
    "read_execution",
    "read_executions",
    "read_fresh",
    "read_grants",
    "read_timeline",
    "rebuild_rollups",
    "verify_rollups",
    "verify_workspace",
]
__getattr__ = exports(
    __name__,
    {
        "BREAKDOWN_DIMENSIONS": "spojit_engine.metering.reads.reports",
        "BalanceRecord": "spojit_engine.metering.reads.card",
        "BreakdownRecord": "spojit_engine.metering.reads.reports",
        "ExecutionDetailRecord": "spojit_engine.metering.reads.executions",
        "ExecutionRecord": "spojit_engine.metering.reads.executions",
        "TimelineDayRecord": "spojit_engine.metering.reads.timeline",
        "balance_of": "spojit_engine.metering.reads.card",
        "quick_balance": "spojit_engine.metering.reads.quick_read",
        "read_balance": "spojit_engine.metering.reads.reports",
        "read_breakdown": "spojit_engine.metering.reads.reports",
        "read_execution": "spojit_engine.metering.reads.executions",
        "read_executions": "spojit_engine.metering.reads.executions",
        "read_fresh": "spojit_engine.metering.reads.reports",
        "read_grants": "spojit_engine.metering.reads.reports",
        "read_timeline": "spojit_engine.metering.reads.timeline",
        "rebuild_rollups": "spojit_engine.metering.reads.rollup_verify",
        "verify_rollups": "spojit_engine.metering.reads.rollup_verify",
        "verify_workspace": "spojit_engine.metering.reads.verify",
    },
)
