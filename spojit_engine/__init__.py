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

__all__ = [
    "AdminRequired",
    "Conflict",
    "Engine",
    "Forbidden",
    "IdempotencyConflict",
    "IllegalTransition",
    "InsufficientCredits",
    "InvalidInput",
    "LedgerCorrupt",
    "LedgerUnavailable",
    "NotFound",
    "SpojitError",
    "Unauthorized",
]
