"""spojit_engine: cost-aware workflow execution for Prefect.

The public face is re-exported here; everything else is reached through its subpackage.
"""

from typing import TYPE_CHECKING, Any

# Where each public name lives. They are imported on first use (PEP 562), so a command that
# needs none of them (``spojit usage``) does not pay for SQLAlchemy, Prefect or the nodes.
_EXPORTS = {
    "Engine": "spojit_engine.engine",
    "metered": "spojit_engine.metering.decorator",
    **dict.fromkeys(
        ("AdminRequired", "Conflict", "Forbidden", "IdempotencyConflict", "IllegalTransition",
         "InsufficientCredits", "InvalidInput", "LedgerCorrupt", "LedgerUnavailable",
         "NotFound", "SpojitError", "Unauthorized"),
        "spojit_engine.errors",
    ),
    **dict.fromkeys(
        ("Condition", "Connector", "Knowledge", "Loop", "Parallel", "Response", "Transform",
         "Trigger", "Variable", "Workflow"),
        "spojit_engine.nodes",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'spojit_engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
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
