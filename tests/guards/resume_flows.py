"""A workflow for the resume end-to-end test (``spojit deploy tests/guards/resume_flows.py``):
a trigger and four Direct Connectors, 0.01 + 4 x 1.00 credits a run, no LLM."""

from __future__ import annotations

from typing import Any

from spojit_engine import Connector, Trigger, Workflow


def _step(label: str) -> Connector:
    def tool(value: Any) -> Any:
        return {**(value or {}), label: True}

    tool.__name__ = label
    return Connector(label, tool, mode="direct")


workflow = Workflow(
    "resume_hook",
    [Trigger("webhook"), _step("n1"), _step("n2"), _step("n3"), _step("n4")],
    description="Four paid steps: a run the workspace can pay only half of stops at n3.",
)

sample_input: dict[str, Any] = {}
