"""A refusal for credits reads as an outcome in a worker's log: Prefect's ERROR-with-traceback
records about an ``InsufficientCredits`` become one WARNING line; others pass untouched. And the
guard's note on a deployment's description comes and goes whole."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from decimal import Decimal

import pytest
from guard_helpers import unique

from spojit_engine import Engine
from spojit_engine.errors import InsufficientCredits
from spojit_engine.guards.prefect_api import PAUSE_NOTE_MARK, with_pause_note
from spojit_engine.guards.runs import refusal_log


def record_of(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "prefect.flow_runs",
        logging.ERROR,
        __file__,
        1,
        "Engine execution exited with unexpected exception",
        (),
        exc_info,
    )


def test_a_credit_refusal_becomes_one_warning_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = InsufficientCredits("acme", needed=Decimal(1), available=Decimal(0))
    wrapped = RuntimeError("task failed")
    wrapped.__cause__ = refusal
    refusal_log.install()
    refusal_log.install()  # idempotent
    assert logging.getLogger("prefect.flow_runs").filters.count(refusal_log._FILTER) == 1
    for error in (refusal, wrapped):
        record = record_of(error)
        assert refusal_log.QuietRefusals().filter(record)
        assert (record.levelname, record.exc_info) == ("WARNING", None)
        assert record.getMessage() == f"Out of credits, run not continued: {refusal}"
    other = record_of(ValueError("a real bug"))
    assert refusal_log.QuietRefusals().filter(other)
    assert other.levelname == "ERROR" and other.exc_info is not None


def test_the_pause_note_is_added_once_and_removed_whole() -> None:
    noted = with_pause_note("Nightly digest.", "at 2026-12-03 06:00 UTC: Out of credits.")
    assert noted == f"{PAUSE_NOTE_MARK} at 2026-12-03 06:00 UTC: Out of credits.\n\nNightly digest."
    again = with_pause_note(noted, "at 2026-12-04 06:00 UTC: Out of credits.")
    assert again.count(PAUSE_NOTE_MARK) == 1 and again.endswith("\n\nNightly digest.")
    assert with_pause_note(again, None) == "Nightly digest."
    assert with_pause_note(None, None) == "" and with_pause_note("", "x") == f"{PAUSE_NOTE_MARK} x"


@pytest.fixture
def run_log(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """Every record Prefect's run loggers hand to their handlers (after their filters), as a
    worker's log shows them. Read at ``callHandlers``: Prefect reconfigures logging (and drops
    handlers added earlier) when a flow starts."""
    kept: list[logging.LogRecord] = []
    hand_on = logging.Logger.callHandlers

    def keep(logger: logging.Logger, record: logging.LogRecord) -> None:
        if record.name.startswith(refusal_log.RUN_LOGGERS):
            kept.append(record)
        hand_on(logger, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", keep)
    return kept


@pytest.mark.parametrize("retries", [0, 2])
def test_a_node_refused_part_way_logs_one_warning_and_no_error(
    bound: Engine, run_log: list[logging.LogRecord], retries: int
) -> None:
    """Each refused task used to log ``ERROR Finished in state Failed(… InsufficientCredits …)``
    beside the WARNINGs; now the run's "Stopped for credits" line is the one WARNING, with no
    ERROR and no traceback, and the run ends as before (``OutOfCredits``, kept to resume)."""
    from test_resume import flow_state, four_nodes, short_workspace

    ws = short_workspace(bound, "1.5")
    workflow = four_nodes(unique("quiet"), Counter())
    for node in workflow.steps:
        node.retries = retries  # a retry condition refuses the retry: no "retrying" line either
    with pytest.raises(InsufficientCredits):
        workflow.run(None, workspace="acme")
    errors = [r for r in run_log if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert all(r.exc_info is None for r in run_log)
    warnings = [r.getMessage() for r in run_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(
        "Stopped for credits at node n2: Out of"
    ), warnings
    (kept,) = bound.incomplete_runs(ws)
    state = flow_state(kept.flow_run_id)
    assert (state.type.value, state.name) == ("CANCELLED", "OutOfCredits")


def test_a_refused_tasks_lines_become_info_and_other_failures_stay_errors() -> None:
    from spojit_engine.guards.errors import BudgetExceeded

    refusal = InsufficientCredits("acme", needed=Decimal(1), available=Decimal(0))
    task_line = record_of(refusal)
    task_line.name = "prefect.task_runs"
    assert refusal_log.QuietRefusals().filter(task_line)
    assert (task_line.levelname, task_line.exc_info) == ("INFO", None)
    for name in ("InsufficientCredits", BudgetExceeded.__name__):
        finished = logging.LogRecord(
            "prefect.task_runs", logging.ERROR, __file__, 1,
            "Finished in state Failed('Task run encountered an exception %s: Out of credits.')",
            (name,), None,
        )  # fmt: skip
        assert refusal_log.QuietRefusals().filter(finished)
        assert finished.levelname == "INFO"
        assert finished.getMessage() == "Finished in state Failed: refused for credits."
    crash = logging.LogRecord(
        "prefect.task_runs", logging.ERROR, __file__, 1,
        "Finished in state Failed('Task run encountered an exception ValueError: boom')", (), None,
    )  # fmt: skip
    assert refusal_log.QuietRefusals().filter(crash) and crash.levelname == "ERROR"
