"""Credit guards: admission at flow start, pausing and resuming schedules, workflow webhooks and
their queue, per-workflow budget caps (README.md). ``Engine.guard`` is the one ``Guard`` of an
engine; a running ``Workflow`` calls ``flow_run`` (and nothing else of the guards). Subpackages:
``runs`` (a flow run at the gate, and runs stopped part-way) and ``deployments`` (what the guard
does to Prefect deployments). Importing this package imports neither Prefect nor FastAPI."""

from spojit_engine.lazy import exports

__all__ = [  # pinned by tests/guards/test_faces.py
    "BudgetExceeded",
    "Guard",
    "GuardPort",
    "OutOfCredits",
    "PrefectUnavailable",
    "QueueFull",
    "UnknownHook",
    "deployments",
    "flow_run",
    "runs",
]
__getattr__ = exports(
    __name__,
    {
        "BudgetExceeded": "spojit_engine.guards.errors",
        "Guard": "spojit_engine.guards.guard",
        "GuardPort": "spojit_engine.guards.port",
        "OutOfCredits": "spojit_engine.guards.errors",
        "PrefectUnavailable": "spojit_engine.guards.errors",
        "QueueFull": "spojit_engine.guards.errors",
        "UnknownHook": "spojit_engine.guards.errors",
        "deployments": "spojit_engine.guards.deployments",
        "flow_run": "spojit_engine.guards.flow_run",
        "runs": "spojit_engine.guards.runs",
    },
)
