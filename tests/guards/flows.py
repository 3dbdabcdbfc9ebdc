"""A workflow for deploying in tests (``spojit deploy tests/guards/flows.py``, the end-to-end
test's worker): one Direct Connector, 1.00 credit a run, no LLM, nothing but spojit_engine."""

from __future__ import annotations

from typing import Any

from spojit_engine import Connector, Trigger, Workflow


def tick(payload: Any) -> dict[str, Any]:
    return {"ticked": payload}


workflow = Workflow(
    "guard_tick",
    [Trigger("every few seconds"), Connector("tick", tick, mode="direct")],
    description="Ticks: 1.01 credits a run (a trigger and a direct connector).",
)

sample_input: dict[str, Any] = {}
