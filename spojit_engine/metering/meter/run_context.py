"""The one adapter to Prefect's run context (imported lazily): which flow run, task run and
attempt a node call belongs to, the run's name, what triggered it, and the ``spojit:`` tags that
say for whom it runs.

Tags: ``spojit:workspace=NAME`` (or id), ``spojit:member=ID``, ``spojit:test`` (a test run),
``spojit:trigger=KIND`` (webhook, manual, …); a test run's scope, ``spojit:sample=N`` (Loops run
on N items) and ``spojit:max-credits=C`` (the run stops at C credits); ``spojit:reserve=p95|max``
(the run holds its estimate at start); ``spojit:resume-of=RUN`` (a run resuming RUN, which was
stopped for credits). They ride on the flow run (``prefect.tags`` or the deployment's tags), so
every task run of the flow sees them.

``classify`` (what started a run) is pure and lives here, below both the meter, which records it
with each usage record, and the guards, which admit or refuse by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

WORKSPACE_TAG = "spojit:workspace="
MEMBER_TAG = "spojit:member="
TEST_TAG = "spojit:test"
TRIGGER_TAG = "spojit:trigger="


class TriggerKind(StrEnum):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    AUTOMATION = "automation"
    MANUAL = "manual"
    TEST = "test"


def classify(
    tags: Iterable[str], *, created_by_type: str | None, auto_scheduled: bool
) -> TriggerKind:
    """What started a flow run: our tags first (a test run is a test run however it started;
    webhook runs carry ``spojit:trigger=webhook``), then Prefect's ``created_by`` and
    ``auto_scheduled``. A run created through the API or the UI looks manual."""
    tags = set(tags)
    if TEST_TAG in tags:
        return TriggerKind.TEST
    named = {t[len(TRIGGER_TAG) :] for t in tags if t.startswith(TRIGGER_TAG)}
    if TriggerKind.WEBHOOK.value in named:
        return TriggerKind.WEBHOOK
    if (created_by_type or "").upper() == "AUTOMATION":
        return TriggerKind.AUTOMATION
    if auto_scheduled or (created_by_type or "").upper() == "SCHEDULE":
        return TriggerKind.SCHEDULE
    return TriggerKind.MANUAL


def classify_flow_run(flow_run: Any) -> TriggerKind:
    """``classify`` of a Prefect ``FlowRun``: its tags, ``created_by`` and ``auto_scheduled``."""
    created_by = getattr(flow_run, "created_by", None)
    return classify(
        flow_run.tags or (),
        created_by_type=getattr(created_by, "type", None),
        auto_scheduled=bool(getattr(flow_run, "auto_scheduled", False)),
    )


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
    run_name: str | None = None  # Prefect's flow run name ("crimson-otter")
    trigger: TriggerKind | None = None

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
        from spojit_engine.money import credits_to_ucr_exact

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
    flow_run_id = flow_name = task_run_id = run_name = None
    trigger = None
    attempt = 1
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        flow_run_id = str(flow_ctx.flow_run.id)
        flow_name = flow_ctx.flow.name if flow_ctx.flow else flow_ctx.flow_run.name
        run_name = flow_ctx.flow_run.name
        trigger = classify_flow_run(flow_ctx.flow_run)
        tags.update(flow_ctx.flow_run.tags or ())
    if task_ctx is not None:
        task_run_id = str(task_ctx.task_run.id)
        attempt = max(1, task_ctx.task_run.run_count)
        tags.update(task_ctx.task_run.tags or ())
        flow_run_id = flow_run_id or (
            str(task_ctx.task_run.flow_run_id) if task_ctx.task_run.flow_run_id else None
        )
    if trigger is None:  # no flow context: only the tags can tell (a test or webhook run)
        kind = classify(tags, created_by_type=None, auto_scheduled=False)
        trigger = kind if kind in (TriggerKind.TEST, TriggerKind.WEBHOOK) else None
    return RunInfo(flow_run_id, task_run_id, attempt, flow_name, frozenset(tags), run_name, trigger)
