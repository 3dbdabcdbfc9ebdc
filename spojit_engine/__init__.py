"""spojit_engine: cost-aware workflow execution for Prefect.

The public face is re-exported here; everything else is reached through its subpackage.
"""

from spojit_engine.engine import Engine
from spojit_engine.errors import (
    AdminRequired,
    Conflict,
    Forbidden,
    IdempotencyConflict,
    IllegalTransition,
    InsufficientCredits,
    InvalidInput,
    LedgerCorrupt,
    LedgerUnavailable,
    NotFound,
    SpojitError,
    Unauthorized,
)
from spojit_engine.metering.decorator import metered
from spojit_engine.nodes import (
    Condition,
    Connector,
    Knowledge,
    Loop,
    Parallel,
    Response,
    Transform,
    Trigger,
    Variable,
    Workflow,
)

__all__ = [
    "AdminRequired",
    "Condition",
    "Conflict",
    "Connector",
    "Engine",
    "Forbidden",
    "IdempotencyConflict",
    "IllegalTransition",
    "InsufficientCredits",
    "InvalidInput",
    "Knowledge",
    "LedgerCorrupt",
    "LedgerUnavailable",
    "Loop",
    "NotFound",
    "Parallel",
    "Response",
    "SpojitError",
    "Transform",
    "Trigger",
    "Unauthorized",
    "Variable",
    "Workflow",
    "metered",
]
