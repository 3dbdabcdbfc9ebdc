"""``Workflow``: a sequence of nodes that becomes a real Prefect flow named after the workflow.
Each step gets the previous step's output; each node is a task run. When the flow finishes it
publishes a Prefect table artifact of the credits each node call cost."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.metering.meter.run_context import MEMBER_TAG, TEST_TAG, WORKSPACE_TAG
from spojit_engine.metering.store.schema import WORKFLOW_LENGTH_MAX
from spojit_engine.nodes.base import Node
from spojit_engine.nodes.nominal import Trigger
from spojit_engine.nodes.scope import RunScope
from spojit_engine.text import check_line

if TYPE_CHECKING:
    from spojit_engine.estimation.results import Estimate

ARTIFACT_ROWS_MAX = 10_000  # node calls listed in a run's credit artifact (the total is all)


def run_tags(workspace: str | None, member_id: str | None, test: bool) -> list[str]:
    """The ``spojit:`` tags that tell every node of a run whom to bill."""
    tags = []
    if workspace:
        tags.append(WORKSPACE_TAG + workspace)
    if member_id:
        tags.append(MEMBER_TAG + member_id)
    if test:
        tags.append(TEST_TAG)
    return tags


def publish_credit_artifact() -> list[dict[str, Any]]:
    """A table artifact of this flow run's node calls and their credits; returns its rows."""
    from prefect.artifacts import create_table_artifact
    from prefect.context import FlowRunContext

    from spojit_engine.display import credits_text
    from spojit_engine.metering.meter.batch import commit_run
    from spojit_engine.metering.meter.runtime import current_runtime
    from spojit_engine.metering.store.usage import read_usage, usage_totals
    from spojit_engine.money import ucr_to_credits

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return []
    sa_engine, flow_run_id = current_runtime().engine.sa_engine, str(ctx.flow_run.id)
    commit_run(flow_run_id, forget=False)  # its batched charges, before they are read
    usage = read_usage(sa_engine, flow_run_id=flow_run_id, limit=ARTIFACT_ROWS_MAX)
    calls, total = usage_totals(sa_engine, flow_run_id=flow_run_id)
    rows = [
        {"node": u.node_name, "type": u.node_type + (f".{u.mode}" if u.mode else ""),
         "attempt": u.attempt, "status": u.status, "models": u.models or "",
         "tokens_in": u.tokens_in, "tokens_out": u.tokens_out,
         "credits": credits_text(ucr_to_credits(u.credits_ucr))}
        for u in reversed(usage)
    ]  # fmt: skip
    shown = "" if calls == len(rows) else f" (the last {len(rows)} of {calls} node calls)"
    create_table_artifact(
        table=rows,
        key="spojit-credits",
        description=f"Credits per node: {credits_text(ucr_to_credits(total))} in all{shown}.",
    )
    return rows


def _announce_run() -> Callable[[], None]:
    """Tell the ledger's observers this flow run started; returns what tells them it ended,
    everything it spent committed (a per-run alert waits for that, to state what it cost)."""
    from prefect.context import FlowRunContext

    from spojit_engine.metering.meter.runtime import current_runtime

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return lambda: None
    observers, run_id = current_runtime().engine.ledger.observers, str(ctx.flow_run.id)
    observers.run_started(run_id)
    return lambda: observers.run_ended(run_id)


class Workflow:
    def __init__(self, name: str, steps: Sequence[Node], *, description: str = "",
                 reserve: str | None = None) -> None:  # fmt: skip
        """``reserve`` (``"p95"`` or ``"max"``): each run holds that estimate at start
        (``guards/runs/reserve.py``); a deployment's ``--reserve`` overrides it."""
        check_line(name, what="A workflow's name", chars_max=WORKFLOW_LENGTH_MAX)
        if not steps:
            raise InvalidInput(f"Workflow {name!r} needs at least one step.")
        if reserve not in (None, "p95", "max"):
            raise InvalidInput(f"Workflow {name!r}: reserve must be 'p95' or 'max'.")
        self.name = name
        self.steps = list(steps)
        self.description = description
        self.reserve = reserve

    @property
    def trigger(self) -> Trigger | None:
        first = self.steps[0]
        return first if isinstance(first, Trigger) else None

    def _body(self, payload: Any = None, test: bool = False, sample: int | None = None,
              max_credits: str | None = None) -> Any:  # fmt: skip
        """The flow. ``test``/``sample``/``max_credits`` are a deployment's way to scope its
        runs as test runs (``spojit deploy --test``); ``Workflow.run`` uses tags instead."""
        from prefect import tags

        scoped = RunScope.of(test=test, sample=sample, max_credits=max_credits).tags()
        with tags(*scoped) if scoped else contextlib.nullcontext():
            return self._admitted(payload)

    def _admitted(self, payload: Any) -> Any:
        from spojit_engine.guards import flow_run

        refused = flow_run.admit_run(self.name)  # the credit guard: None, or this run's final state
        if refused is None:
            reserved = flow_run.reserve_run(self, payload)
            if reserved is None or isinstance(reserved, flow_run.Reserved):
                return self._reserved(payload, reserved)
            refused = reserved  # its reservation was refused: the run did not start
        return flow_run.refused_at_start(self.name, refused)  # a refused resume stays to resume

    def _reserved(self, payload: Any, reserved: Any) -> Any:
        from spojit_engine.guards import flow_run

        ended = _announce_run()
        try:
            return self._steps(payload)
        finally:
            try:
                flow_run.close(reserved)  # however the run ended, the rest of its hold goes back
            finally:
                ended()  # the notifier forgets the run even if the release failed

    def _steps(self, payload: Any) -> Any:
        value = payload
        try:
            for step in self.steps:
                value = step(value)
        except InsufficientCredits as exc:  # stopped part-way: kept as incomplete, to resume
            from spojit_engine.guards.flow_run import stopped_for_credits

            with contextlib.suppress(Exception):
                publish_credit_artifact()
            return stopped_for_credits(self.name, exc)
        except BaseException:
            with contextlib.suppress(Exception):  # never mask why the run failed
                publish_credit_artifact()  # a failed run consumed credits too
            raise
        publish_credit_artifact()
        return value

    @cached_property
    def flow(self) -> Any:
        """The Prefect flow (built once)."""
        from prefect import Flow

        return Flow(
            self._body, name=self.name, description=self.description or None,
            validate_parameters=False, log_prints=True,
        )  # fmt: skip

    def run(self, payload: Any = None, *, workspace: str | None = None,
            member_id: str | None = None, test: bool = False, sample: int | None = None,
            max_credits: Decimal | int | str | None = None) -> Any:  # fmt: skip
        """Run the flow now, billed to ``workspace``: a test run when ``test``, its Loops on
        ``sample`` items, stopping before it would spend more than ``max_credits``."""
        from prefect import tags

        scope = RunScope.of(test=test, sample=sample, max_credits=max_credits)
        with tags(*run_tags(workspace, member_id, False), *scope.tags()):
            return self.flow(payload)

    def estimate(
        self, *, workspace: str | None = None, items: int | None = None, inputs: Any = None,
        test: bool = False, sample: int | None = None,
    ) -> Estimate:  # fmt: skip
        """What one run will cost — ``Engine.estimate`` on the engine node calls bill (the bound
        runtime's); ``workspace`` (name or id) adds its history and prices."""
        from spojit_engine.estimation.estimator import estimate
        from spojit_engine.metering.meter.runtime import current_runtime

        runtime = current_runtime()
        workspace_id = runtime.workspace(workspace)[0] if workspace else None
        RunScope.of(test=test, sample=sample)  # the run's own checks (estimation is below them)
        return estimate(runtime, workspace_id, self, items=items, inputs=inputs, test=test,
                        sample=sample)  # fmt: skip

    def reservation(
        self, workspace_id: str, policy: str, *, inputs: Any, test: bool, sample: int | None
    ) -> Decimal:
        """Credits one run reserves at start under ``policy`` (``guards/runs/reserve.py``): its p95
        or max estimate."""
        credits = self.estimate(
            workspace=workspace_id, inputs=inputs, test=test, sample=sample
        ).total.credits
        return credits.max if policy == "max" else credits.p95
