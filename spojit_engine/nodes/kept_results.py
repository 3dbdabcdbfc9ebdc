"""The results of a run's completed node calls, kept in memory and written to Prefect's result
store only when the run is stopped for credits — the one time a resume needs them.

A resumed run reads each completed node's result under its call identity (``calls.py``) instead
of running the node again. Persisting every node's result as it completes (``persist_result``
with a cache key) would make that work, but costs every node call of every run a result file and
a cache lookup (more than the metering itself). Instead a run's results wait here; when one of
its node calls is refused (``InsufficientCredits``) the process is still alive, so ``refused``
writes them all, and from then on the run's late finishers (concurrent Loop and Parallel
children) are written as they complete. The buffer is bounded (``KEPT_MAX`` results per process):
beyond it the oldest are written out instead of kept, so memory stays flat and nothing a resume
needs is dropped.

A process killed outright loses what is only kept here, but such a run was not stopped for
credits and is not resumed; a task running in another process (a Dask or Ray task runner) keeps
its own results, so a refusal elsewhere does not write them: those nodes run again on resume
(never billed twice: their metering keys replay).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

KEPT_MAX = 10_000  # results buffered per process; beyond it the oldest are written out
# (flow run, cache key) -> (the task a resume looks it up with, the result), oldest first
_kept: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
_refused: OrderedDict[str, None] = OrderedDict()  # runs with a refused node call, newest last
_lock = threading.Lock()


def keep(flow_run_id: str, cache_key: str, task: Any, result: Any) -> None:
    """Remember ``result`` of a completed node call of ``flow_run_id``; ``task`` is the task a
    resumed run will look it up with (its result settings decide where it is written)."""
    out: list[tuple[str, Any, Any]] = []
    with _lock:
        if flow_run_id in _refused:
            out.append((cache_key, task, result))
        else:
            _kept[(flow_run_id, cache_key)] = (task, result)
            while len(_kept) > KEPT_MAX:
                (_, key), (old_task, old_result) = _kept.popitem(last=False)
                out.append((key, old_task, old_result))
    _write_all(out)


def refused(flow_run_id: str) -> None:
    """``flow_run_id`` was stopped for credits: write what it completed, and what completes
    from now on."""
    with _lock:
        _refused[flow_run_id] = None
        while len(_refused) > KEPT_MAX:
            _refused.popitem(last=False)
        mine = [k for k in _kept if k[0] == flow_run_id]
        out = [(k[1], *_kept.pop(k)) for k in mine]
    _write_all(out)


def _write_all(results: list[tuple[str, Any, Any]]) -> None:
    """Write each result where its task (cached under its key) will find it. One that cannot be
    written (say, unpicklable) is logged and skipped, as Prefect does: that node runs again on
    resume, billed once all the same."""
    if not results:
        return
    from prefect.results import ResultStore, get_result_store
    from prefect.types._datetime import now

    for cache_key, task, result in results:
        try:  # as Prefect writes a task's result: its store, its expiration
            store: ResultStore = get_result_store().update_for_task(task, _sync=True)  # type: ignore[call-arg,assignment]
            store.write(result, key=cache_key, expiration=now("UTC") + task.cache_expiration)
        except Exception as exc:
            log.warning("Could not keep the result of %s for a resume: %s", cache_key, exc)
