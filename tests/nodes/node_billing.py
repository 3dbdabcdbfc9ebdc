"""What the node tests expect a node call to cost, computed here independently of the metering
code: base prices read straight from the shipped ``prices.toml``, token prices straight from
``litellm.model_cost`` (through ``Decimal(str(float))``), prompt tokens recounted with
``litellm.token_counter``, each LLM call rounded up to the micro-credit on its own, and checked
against LiteLLM's own ``completion_cost`` float to within 1 µcr.

``LlmSpy`` wraps ``litellm.completion`` (a seam on the third-party library, not on our code) so a
test sees every LLM request and response the nodes made, or proves that none was made.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from spojit_engine import Engine
from spojit_engine.metering.core.pricing import PriceBook
from spojit_engine.metering.meter.runtime import Runtime, use_runtime
from spojit_engine.metering.store.usage import UsageRow, read_usage
from spojit_engine.nodes import Workflow

UCR = Decimal(1_000_000)
_SHIPPED = tomllib.loads(
    resources.files("spojit_engine.metering.core").joinpath("prices.toml").read_text()
)
CREDITS_PER_USD = Decimal(_SHIPPED["credits_per_usd"])
BASE_UCR = {node_type: int(Decimal(v) * UCR) for node_type, v in _SHIPPED["base"].items()}


class Person(BaseModel):
    """What the example Connector and Transform nodes extract."""

    name: str
    title: str


def litellm() -> Any:
    from spojit_engine.llm import litellm_module

    return litellm_module()


def ceil_ucr(usd: Decimal) -> int:
    """USD -> µcr at the shipped rate, rounded up."""
    return int((usd * CREDITS_PER_USD * UCR).to_integral_value(ROUND_CEILING))


@dataclass
class LlmCall:
    request: dict[str, Any]
    response: Any

    @property
    def model(self) -> str:
        return str(self.request["model"])

    @property
    def tokens_in(self) -> int:
        return int(self.response.usage.prompt_tokens)

    @property
    def tokens_out(self) -> int:
        return int(self.response.usage.completion_tokens)

    def exact_usd(self, price: tuple[Decimal, Decimal] | None = None) -> Decimal:
        """The call's USD cost from its usage; ``price`` (in, out per token) or LiteLLM's map."""
        if price is None:
            entry = litellm().model_cost[self.model]
            price = (
                Decimal(str(entry["input_cost_per_token"])),
                Decimal(str(entry["output_cost_per_token"])),
            )
        return self.tokens_in * price[0] + self.tokens_out * price[1]

    def expected_ucr(self, price: tuple[Decimal, Decimal] | None = None) -> int:
        """This call's credits, recomputed from scratch; with LiteLLM's map, also cross-checked
        against ``litellm.completion_cost`` (a float) to within one micro-credit."""
        recounted = litellm().token_counter(model=self.model, messages=self.request["messages"])
        assert self.tokens_in == recounted, "the mock LLM must report the real prompt tokens"
        assert 0 < self.tokens_out <= self.request["max_tokens"]
        ucr = ceil_ucr(self.exact_usd(price))
        if price is None:
            float_usd = litellm().completion_cost(completion_response=self.response)
            float_ucr = Decimal(str(float_usd)) * CREDITS_PER_USD * UCR
            assert abs(float_ucr - ucr) <= 1, (float_usd, ucr)
        return ucr


@dataclass
class LlmSpy:
    """Every ``litellm.completion`` the nodes made, in order (requests and responses)."""

    calls: list[LlmCall] = field(default_factory=list)
    attempts: int = 0
    fail_first: int = 0

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def completion(**kwargs: Any) -> Any:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                raise ConnectionError("the provider is down (LlmSpy.fail_first)")
            # A copy: the agent appends to its message list after each round trip.
            request = copy.deepcopy(kwargs)
            response = real(**kwargs)
            self.calls.append(LlmCall(request, response))
            return response

        return completion

    def expected_ucr(self, price: tuple[Decimal, Decimal] | None = None) -> int:
        return sum(call.expected_ucr(price) for call in self.calls)


def spy_on_litellm(monkeypatch: pytest.MonkeyPatch, *, fail_first: int = 0) -> LlmSpy:
    """Route ``litellm.completion`` through a new spy until the test ends."""
    spy = LlmSpy(fail_first=fail_first)
    module = litellm()
    monkeypatch.setattr(module, "completion", spy.wrap(module.completion))
    return spy


@dataclass
class Billed:
    """A workspace whose node calls bill ``engine`` while a test runs."""

    engine: Engine
    workspace_id: str
    name: str = "acme"

    def consumed_ucr(self) -> int:
        return int(self.engine.balance(self.workspace_id).consumed * UCR)

    def usage(self, flow_run_id: str | None = None) -> list[UsageRow]:
        """Usage records of this workspace (of one flow run), oldest first."""
        rows = read_usage(
            self.engine.sa_engine, workspace_id=self.workspace_id, flow_run_id=flow_run_id
        )
        return list(reversed(rows))

    def last_flow_run_id(self) -> str:
        flow_run_id = self.usage()[-1].flow_run_id
        assert flow_run_id is not None
        return flow_run_id

    def by_node_type(self, workflow: str, *, test_run: bool = False) -> dict[str, tuple[int, int]]:
        """``{node_type: (credits µcr, calls)}`` of one workflow, from ``Engine.breakdown``."""
        return {
            str(row.node_type): (int(row.credits * UCR), row.calls)
            for row in self.engine.breakdown(self.workspace_id, by=("workflow", "node_type"))
            if row.workflow == workflow and row.test_run == test_run
        }

    def drain_to(self, credits_left: Decimal) -> None:
        """Spend all but ``credits_left`` (outside any workflow)."""
        remaining = self.engine.balance(self.workspace_id).remaining
        self.engine.debit(self.workspace_id, remaining - credits_left, key="test:drain")
        assert self.engine.balance(self.workspace_id).remaining == credits_left

    def run(self, workflow: Workflow, payload: Any = None, *, test: bool = False) -> Any:
        return workflow.run(payload, workspace=self.name, test=test)


@contextmanager
def billed_workspace(
    engine: Engine, *, plan: str = "starter", book: PriceBook | None = None
) -> Iterator[Billed]:
    """Bind a runtime to ``engine`` with one workspace; afterwards the ledger verifies and no
    credit is left on hold (every hold was settled or released)."""
    workspace = engine.create_workspace("acme", plan=plan)
    with use_runtime(Runtime.create(engine, book=book)):
        yield Billed(engine, workspace.id)
    assert engine.verify() >= 1
    assert engine.balance(workspace.id).held == 0


def flow_run_state(flow_run_id: str) -> Any:
    """The final state of a flow run, read back from the Prefect API."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).state


def task_runs(flow_run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )


@dataclass(frozen=True)
class CreditArtifact:
    rows: list[dict[str, Any]]
    description: str

    @property
    def total(self) -> Decimal:
        """The total the description states: ``Credits per node: 1.50 in all.``"""
        prefix, suffix = "Credits per node: ", " in all."
        assert self.description.startswith(prefix) and self.description.endswith(suffix)
        return Decimal(self.description[len(prefix) : -len(suffix)])


def credit_artifacts(flow_run_id: str) -> list[CreditArtifact]:
    """The ``spojit-credits`` table artifacts of one flow run, read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["spojit-credits"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
            )
        )
    found = []
    for artifact in artifacts:
        assert artifact.type == "table"
        data = artifact.data
        rows = json.loads(data) if isinstance(data, str) else data
        found.append(CreditArtifact(rows=rows, description=artifact.description or ""))
    return found


def credit_artifact(flow_run_id: str) -> CreditArtifact:
    (artifact,) = credit_artifacts(flow_run_id)
    return artifact


def forget_call_numbers(node_name: str) -> None:
    """Forget how often ``node_name`` was called in each run attempt, as a process that restarts
    the same attempt would: its next call gets call number 0 again, so it replays its keys."""
    from spojit_engine.metering.meter import decorator

    with decorator._counters_lock:
        for scope in [s for s in decorator._counters if s[2] == node_name]:
            del decorator._counters[scope]


def spojit_tags(workspace: str = "acme", *, test: bool = False) -> Any:
    """The ``prefect.tags`` context a hand-written flow runs in to bill ``workspace``."""
    from prefect import tags

    from spojit_engine.nodes.workflow import run_tags

    return tags(*run_tags(workspace, None, test))
