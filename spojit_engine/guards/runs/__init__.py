"""A flow run at the credit guard: admission at its start, its reservation, what a refusal
records, and runs stopped part-way for credits — kept as incomplete and resumed (README.md).
A running flow reaches these through ``guards/flow_run.py``; they know the guard only as
``guards.port.GuardPort``."""

from spojit_engine.lazy import exports

__all__ = [  # pinned by tests/guards/test_faces.py
    "IncompleteRun",
    "Reserved",
    "ReservingWorkflow",
    "ResumableWorkflow",
    "ResumeStarted",
    "Resumer",
    "RunFacts",
    "RunStatus",
    "admit",
    "check_policy",
    "record_refusal",
    "run_source",
]
__getattr__ = exports(
    __name__,
    {
        "IncompleteRun": "spojit_engine.guards.runs.incomplete",
        "Reserved": "spojit_engine.guards.runs.reserve",
        "ReservingWorkflow": "spojit_engine.guards.runs.reserve",
        "ResumableWorkflow": "spojit_engine.guards.runs.resume",
        "ResumeStarted": "spojit_engine.guards.runs.resume",
        "Resumer": "spojit_engine.guards.runs.resume",
        "RunFacts": "spojit_engine.guards.runs.refusals",
        "RunStatus": "spojit_engine.guards.runs.incomplete",
        "admit": "spojit_engine.guards.runs.admission",
        "check_policy": "spojit_engine.guards.runs.reserve",
        "record_refusal": "spojit_engine.guards.runs.refusals",
        "run_source": "spojit_engine.guards.runs.resume",
    },
)
