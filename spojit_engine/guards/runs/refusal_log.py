"""A refusal for credits is an outcome, not a crash: in a worker, Prefect logs whatever a flow
run's final state raises as ``ERROR … Engine execution exited with unexpected exception`` with a
traceback — and a run refused for credits ends in a Cancelled state that raises its refusal.
Task runs whose metered node was refused log the same way. This filter, on Prefect's run
loggers, rewrites exactly those records (the exception is an ``InsufficientCredits``, or caused
by one) as one WARNING line with the reason and no traceback; every other record passes as is.
``warn`` is how the gate itself writes a line to a run's log.
"""

from __future__ import annotations

import logging

from spojit_engine.errors import InsufficientCredits

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.engine")


def refusal_in(error: BaseException | None) -> InsufficientCredits | None:
    """The credit refusal ``error`` is, or was caused by (a bounded walk of the chain)."""
    for _ in range(8):
        if error is None or isinstance(error, InsufficientCredits):
            return error
        error = error.__cause__ or error.__context__
    return None


class QuietRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        refusal = refusal_in(record.exc_info[1] if record.exc_info else None)
        if refusal is None:
            return True
        record.msg, record.args = "Out of credits, run not continued: %s", (str(refusal),)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
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
