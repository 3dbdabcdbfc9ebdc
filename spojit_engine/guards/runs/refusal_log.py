"""A refusal for credits is an outcome, not a crash: in a worker, Prefect logs whatever a flow
run's final state raises as ``ERROR … Engine execution exited with unexpected exception`` with a
traceback — and a run refused for credits ends in a Cancelled state that raises its refusal.
Task runs whose metered node was refused log the same way, and then Prefect's task engine logs
``ERROR Finished in state Failed('… InsufficientCredits: …')`` — every state but Completed
ends at ERROR there (``task_engine.log_finished_message``), so no state a task could end in
avoids it. This filter, on Prefect's run loggers, rewrites exactly those records (the exception
is an ``InsufficientCredits``, or caused by one) without their traceback: a flow run's as one
WARNING line with the reason; a task run's, and its "Finished in state" line, as INFO — the run
says it once, as the one WARNING of a refusal (``warn``: "Stopped for credits at node …", a
test run's cap, a webhook run back in its queue). The task's state (Failed) and the run's
(``OutOfCredits``) stay as they are; every other record passes as is. ``warn`` is how the gate
itself writes a line to a run's log.
"""

from __future__ import annotations

import logging
import re

from spojit_engine.errors import InsufficientCredits

# Prefect's line for a task run's final state; a raised exception shows as "exception Name: …".
FINISHED = re.compile(r"Finished in state (?P<state>\w+)\(.*\bexception (?P<error>\w+): ", re.S)

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.engine")


def refusal_in(error: BaseException | None) -> InsufficientCredits | None:
    """The credit refusal ``error`` is, or was caused by (a bounded walk of the chain)."""
    for _ in range(8):
        if error is None or isinstance(error, InsufficientCredits):
            return error
        error = error.__cause__ or error.__context__
    return None


def refusal_names() -> set[str]:
    """``InsufficientCredits`` and every subclass of it (a budget cap, a test run's cap)."""
    names, todo = set(), [InsufficientCredits]
    while todo:
        error = todo.pop()
        names.add(error.__name__)
        todo.extend(error.__subclasses__())
    return names


def finished_refused(record: logging.LogRecord) -> str | None:
    """The state a refused task run finished in, when ``record`` is Prefect's line for it."""
    if record.exc_info or record.levelno < logging.ERROR or not isinstance(record.msg, str):
        return None
    found = FINISHED.match(record.getMessage())
    return found["state"] if found and found["error"] in refusal_names() else None


class QuietRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        state = finished_refused(record)
        if state is not None:
            record.msg, record.args = "Finished in state %s: refused for credits.", (state,)
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        refusal = refusal_in(record.exc_info[1] if record.exc_info else None)
        if refusal is None:
            return True
        record.msg, record.args = "Out of credits, run not continued: %s", (str(refusal),)
        level = logging.INFO if record.name.startswith("prefect.task_runs") else logging.WARNING
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info, record.exc_text = None, None
        return True


_FILTER = QuietRefusals()


def install() -> None:
    """Add the filter to Prefect's run loggers (idempotent: once per process)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def warn(message: str, *args: object) -> None:
    """A WARNING in the current run's log (the gate's one way to write there); outside a run
    there is no run logger, and the run's state message says it all."""
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning(message, *args)
    except Exception:  # no run logger outside a run
        pass
