"""A workflow for the scale-out test's crash fault (``spojit deploy tests/scale/flows.py``): one
metered node whose LLM call holds its maximum cost, writes the process id to
``payload["pid_file"]``, then waits ``payload["seconds"]`` before it settles — so the test can
SIGKILL the worker while the hold is open."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from spojit_engine import Connector, Workflow
from spojit_engine.metering.core.pricing import TokenUsage
from spojit_engine.metering.meter.node_meter import current_meter

MODEL = "gpt-4o-mini"
PROMPT_TOKENS, MAX_TOKENS = 2_000, 1_000


def slow_llm(payload: Any) -> dict[str, Any]:
    meter = current_meter("the slow LLM call")
    with meter.llm_call(MODEL, PROMPT_TOKENS, MAX_TOKENS) as settlement:
        Path(payload["pid_file"]).write_text(str(os.getpid()))
        time.sleep(float(payload.get("seconds", 600)))
        settlement.usage = TokenUsage(MODEL, PROMPT_TOKENS, 10)
    return {"answered": True}


workflow = Workflow(
    "scale_slow",
    [Connector("slow_llm", slow_llm, mode="direct")],
    description="One direct connector whose LLM call is slow: a crash lands inside the hold.",
)

sample_input: dict[str, Any] = {}
