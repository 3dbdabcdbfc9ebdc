"""A refusal for credits reads as an outcome in a worker's log: Prefect's ERROR-with-traceback
records about an ``InsufficientCredits`` become one WARNING line; others pass untouched. And the
guard's note on a deployment's description comes and goes whole."""

from __future__ import annotations

import logging
import sys
from decimal import Decimal

import pytest

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
