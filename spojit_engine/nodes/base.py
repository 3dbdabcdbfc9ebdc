"""``Node``: one step of a workflow, billed as one node call and run as one Prefect task.

Inside a Prefect flow, calling a node runs it as a task named after the node (tagged with its
type, ``spojit:node-type=connector.agent``, when ``SPOJIT_NODE_TASK_TAGS`` is on); outside a flow
it runs (still metered) as a plain call. A node's own work is ``run``; composite nodes (Loop,
Parallel, Condition) also dispatch their children from the flow, so every child is a task run of
its own. A run resumed after it was stopped for credits reads its completed nodes' results
instead of running them again: the original run keeps them under each call's identity
(``calls.py``) and writes them to Prefect's result store when it is refused (``kept_results.py``);
the resumed run's tasks look them up by that identity, and persist their own.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.metering.meter.decorator import node_call
from spojit_engine.metering.store.schema import WORKFLOW_LENGTH_MAX
from spojit_engine.nodes import kept_results
from spojit_engine.nodes.calls import cache_key, call_identity, current_flow_run, result_key
from spojit_engine.settings import get_settings
from spojit_engine.text import check_line

NODE_TYPE_TAG = "spojit:node-type="


def _retry_unless_out_of_credits(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: a retry cannot conjure credits or fix bad input."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, InsufficientCredits | InvalidInput)


def in_flow() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


class Node:
    """Base of every node family. Subclasses set ``family`` and implement ``run``."""

    family: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = ()
    # Composite nodes dispatch children from the flow, so they cannot run inside one task.
    composite: ClassVar[bool] = False

    def __init__(self, name: str, *, mode: str | None = None, retries: int = 0,
                 retry_delay_seconds: float = 0) -> None:  # fmt: skip
        check_line(name, what="A node's name", chars_max=WORKFLOW_LENGTH_MAX)
        if self.modes and mode not in self.modes:
            raise InvalidInput(
                f"{type(self).__name__} {name!r}: mode must be one of {', '.join(self.modes)}."
            )
        self.name = name
        self.mode = mode
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds

    @property
    def node_type(self) -> str:
        """The price-book key: ``family`` or ``family.mode``."""
        return f"{self.family}.{self.mode}" if self.mode else self.family

    def run(self, value: Any) -> Any:
        """The node's own work on its input; unmetered (``call`` meters it)."""
        raise NotImplementedError

    def call(self, value: Any, call_id: str | None = None) -> Any:
        """Run once, metered, in whatever Prefect context there is; ``call_id`` (the call's
        identity across resumes) scopes its metering keys."""
        with node_call(self.node_type, self.name, scope=call_id):
            return self.run(value)

    def _call_keeping(self, value: Any, call_id: str | None = None) -> Any:
        """``call`` in an original run's task: keeps the result for a resume; a refusal writes
        the run's kept results out."""
        run = current_flow_run()
        try:
            result = self.call(value, call_id)
        except InsufficientCredits:
            if run is not None:
                kept_results.refused(run.flow_run_id)
            raise
        if run is not None and call_id is not None:
            kept_results.keep(run.flow_run_id, result_key(call_id), self.resume_task, result)
        return result

    @cached_property
    def task(self) -> Any:
        """This node as a Prefect task in an original run (built once): no persisted result, no
        cache lookup; its result is kept for a resume instead."""
        return self._task(self._call_keeping, resumable=False)

    @cached_property
    def resume_task(self) -> Any:
        """This node as a Prefect task in a resumed run: a call completed before the refusal is
        read from the result store under its identity (not run again); others run and persist."""
        return self._task(self.call, resumable=True)

    def _task(self, fn: Any, *, resumable: bool) -> Any:
        from prefect import Task

        cache: dict[str, Any] = (
            {"cache_key_fn": cache_key, "persist_result": True,
             "cache_expiration": timedelta(days=get_settings().resume_window_days)}
            if resumable
            else {"persist_result": False}
        )  # fmt: skip
        return Task(
            fn,
            name=self.name,
            # Off by default: a tagged task asks the Prefect API for tag concurrency slots
            # before it runs (a round trip per node call); on for tag concurrency limits.
            tags={NODE_TYPE_TAG + self.node_type, f"spojit:node={self.name}"}
            if get_settings().node_task_tags
            else None,
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
            retry_condition_fn=_retry_unless_out_of_credits,
            **cache,
        )

    def _task_for_run(self) -> Any:
        run = current_flow_run()
        return self.resume_task if run is not None and run.resumed else self.task

    def __call__(self, value: Any = None) -> Any:
        """In a flow: a task run of this node. Elsewhere: a metered call."""
        if not in_flow():
            return self.call(value)
        return self._task_for_run()(value, call_identity(self.name, value))

    def submit(self, value: Any) -> Any:
        """A future of this node's task run (flows only), for concurrent steps."""
        if self.composite:
            raise InvalidInput(f"{self!r} dispatches children and cannot run as one future.")
        return self._task_for_run().submit(value, call_identity(self.name, value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.node_type})"
