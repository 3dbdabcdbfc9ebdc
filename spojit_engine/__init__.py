"""spojit_engine: cost-aware workflow execution for Prefect.

The public face is re-exported here; everything else is reached through its subpackage.
"""

from typing import TYPE_CHECKING

from spojit_engine.lazy import exports
from spojit_engine.metering.meter.runtime import provide_default_host

# Where each public name lives. They are imported on first use (PEP 562), so a command that
# needs none of them (``spojit usage``) does not pay for SQLAlchemy, Prefect or the nodes.
_EXPORTS = {
    "Engine": "spojit_engine.engine",
    "metered": "spojit_engine.metering.meter.decorator",
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


def _default_host() -> "Engine":
    """This process's ``Engine`` from the settings: what node calls bill when no runtime is
    bound. Registered here, at the package's top — imported first in every process, a Prefect
    worker's too — so a flow file that imports only the nodes or ``metered`` finds its ledger;
    the facade is imported on the first node call, not before."""
    from spojit_engine.engine import Engine
    from spojit_engine.settings import get_settings

    return Engine(settings=get_settings())


provide_default_host(_default_host)


__getattr__ = exports(__name__, _EXPORTS)

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
    from spojit_engine.metering.meter.decorator import metered
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
