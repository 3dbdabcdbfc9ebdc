"""The one adapter to Prefect's run context (imported lazily): which flow run, task run and
attempt a node call belongs to, and the ``spojit:`` tags that say for whom it runs.

Tags: ``spojit:workspace=NAME`` (or id), ``spojit:member=ID``, ``spojit:test`` (a test run),
``spojit:trigger=KIND`` (webhook, manual, …); a test run's scope, ``spojit:sample=N`` (Loops run
on N items) and ``spojit:max-credits=C`` (the run stops at C credits); ``spojit:reserve=p95|max``
(the run holds its estimate at start); ``spojit:resume-of=RUN`` (a run resuming RUN, which was
stopped for credits). They ride on the flow run (``prefect.tags`` or the deployment's tags), so
every task run of the flow sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WORKSPACE_TAG = "spojit:workspace="
MEMBER_TAG = "spojit:member="
TEST_TAG = "spojit:test"
SAMPLE_TAG = "spojit:sample="
MAX_CREDITS_TAG = "spojit:max-credits="
RESERVE_TAG = "spojit:reserve="
RESUME_TAG = "spojit:resume-of="
CLI_RUN_TAG = "spojit:cli-run="  # a unique tag that finds a CLI run's flow run in Prefect


def original_run(flow_run_id: str, tags: Iterable[str]) -> str:
    """The run a (possibly resumed) run continues: its ``spojit:resume-of`` tag, else itself."""
    for tag in tags:
        if tag.startswith(RESUME_TAG):
            return tag[len(RESUME_TAG) :]
    return flow_run_id


@dataclass(frozen=True, slots=True)
class RunInfo:
    flow_run_id: str | None
    task_run_id: str | None
    attempt: int
    flow_name: str | None
    tags: frozenset[str]

    def tag_value(self, prefix: str) -> str | None:
        for tag in sorted(self.tags):
            if tag.startswith(prefix):
                return tag[len(prefix) :]
        return None

    @property
    def test_run(self) -> bool:
        return TEST_TAG in self.tags

    @property
    def sample(self) -> int | None:
        """A test run's Loop sample size (``spojit:sample=N``)."""
        value = self.tag_value(SAMPLE_TAG)
        return int(value) if self.test_run and value and value.isdigit() else None

    @property
    def max_credits_ucr(self) -> int | None:
        """A test run's credit cap in µcr (``spojit:max-credits=C``); None when uncapped."""
        from spojit_engine.metering.money import credits_to_ucr_exact

        value = self.tag_value(MAX_CREDITS_TAG)
        return credits_to_ucr_exact(value) if self.test_run and value else None


def current_run() -> RunInfo | None:
    """The Prefect run this code runs in, or None outside any flow or task."""
    from prefect.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    flow_ctx = FlowRunContext.get()
    if task_ctx is None and flow_ctx is None:
        return None
    tags: set[str] = set()
    flow_run_id = flow_name = task_run_id = None
    attempt = 1
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        flow_run_id = str(flow_ctx.flow_run.id)
        flow_name = flow_ctx.flow.name if flow_ctx.flow else flow_ctx.flow_run.name
        tags.update(flow_ctx.flow_run.tags or ())
    if task_ctx is not None:
        task_run_id = str(task_ctx.task_run.id)
        attempt = max(1, task_ctx.task_run.run_count)
        tags.update(task_ctx.task_run.tags or ())
        flow_run_id = flow_run_id or (
            str(task_ctx.task_run.flow_run_id) if task_ctx.task_run.flow_run_id else None
        )
    return RunInfo(flow_run_id, task_run_id, attempt, flow_name, frozenset(tags))
