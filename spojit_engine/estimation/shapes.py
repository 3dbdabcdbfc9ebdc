"""What estimation reads of a workflow and its nodes, as protocols.

Estimation sits below ``nodes`` (nodes call it; it never imports them), so the planner and the
advisor type against these shapes, and tell node kinds apart by ``node_type`` — the price-book
key every node has (``loop``, ``connector.agent``, ``transform.structured``…) — through the
``is_…`` guards below. ``nodes/`` satisfies the shapes; ``tests/estimates/test_shapes.py`` checks
each family against its shape, so a renamed attribute fails a test, not an estimate.
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Any, Protocol, TypeGuard, runtime_checkable

Messages = list[dict[str, Any]]  # the chat messages an LLM call sends


@runtime_checkable
class NodeShape(Protocol):
    """Every node: its name (history is kept by it) and its price-book key."""

    @property
    def name(self) -> str: ...

    @property
    def node_type(self) -> str: ...


@runtime_checkable
class WorkflowShape(Protocol):
    """A workflow: its name (history is kept by it) and its steps, in order."""

    @property
    def name(self) -> str: ...

    @property
    def steps(self) -> Sequence[NodeShape]: ...


@runtime_checkable
class LoopShape(NodeShape, Protocol):
    """``loop``: its body runs once per item (a test run: on ``test_sample`` items)."""

    @property
    def body(self) -> NodeShape: ...

    @property
    def test_sample(self) -> int | None: ...


@runtime_checkable
class ConditionShape(NodeShape, Protocol):
    """``condition``: one branch runs (a missing one passes the input through)."""

    @property
    def then(self) -> NodeShape | None: ...

    @property
    def otherwise(self) -> NodeShape | None: ...


@runtime_checkable
class ParallelShape(NodeShape, Protocol):
    """``parallel``: every branch runs on the same input."""

    @property
    def branches(self) -> Sequence[NodeShape]: ...


@runtime_checkable
class VariableShape(NodeShape, Protocol):
    """``variable``: what it passes on is known before the run (its ``run``)."""

    def run(self, value: Any) -> Any: ...


@runtime_checkable
class AgentShape(NodeShape, Protocol):
    """``connector.agent``: up to ``max_round_trips`` LLM calls choosing among ``tools``."""

    @property
    def model(self) -> str: ...

    @property
    def tools(self) -> Sized: ...

    @property
    def max_round_trips(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def messages_for(self, value: Any) -> Messages:
        """The first round trip's messages for ``value``."""
        ...


@runtime_checkable
class StructuredShape(NodeShape, Protocol):
    """``transform.structured``: one LLM call that fills a schema."""

    @property
    def model(self) -> str: ...

    @property
    def max_tokens(self) -> int: ...

    def messages_for(self, value: Any) -> Messages:
        """The call's messages for ``value``."""
        ...

    def answer_example(self, value: Any) -> str:
        """A typical answer for ``value``: the schema's example values, as JSON."""
        ...


@runtime_checkable
class KnowledgeShape(NodeShape, Protocol):
    """``knowledge``: an embedding of the question, then one summarising LLM call over ``k``
    passages."""

    @property
    def model(self) -> str: ...

    @property
    def embedding_model(self) -> str: ...

    @property
    def k(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def messages_for(self, question: str) -> Messages:
        """The summarising call's messages for ``question``, before any passage is added."""
        ...


def is_loop(node: NodeShape) -> TypeGuard[LoopShape]:
    return node.node_type == "loop"


def is_condition(node: NodeShape) -> TypeGuard[ConditionShape]:
    return node.node_type == "condition"


def is_parallel(node: NodeShape) -> TypeGuard[ParallelShape]:
    return node.node_type == "parallel"


def is_variable(node: NodeShape) -> TypeGuard[VariableShape]:
    return node.node_type == "variable"


def is_agent(node: NodeShape) -> TypeGuard[AgentShape]:
    return node.node_type == "connector.agent"


def is_structured(node: NodeShape) -> TypeGuard[StructuredShape]:
    return node.node_type == "transform.structured"


def is_knowledge(node: NodeShape) -> TypeGuard[KnowledgeShape]:
    return node.node_type == "knowledge"


def is_trigger(node: NodeShape) -> bool:
    """A ``trigger`` hands the run's input to the next step unchanged."""
    return node.node_type == "trigger"


def children(node: NodeShape) -> list[NodeShape]:
    """The nodes a composite node dispatches (a Loop's body, a Parallel's or a Condition's
    branches); none for any other node."""
    if is_loop(node):
        return [node.body]
    if is_parallel(node):
        return list(node.branches)
    if is_condition(node):
        return [n for n in (node.then, node.otherwise) if n is not None]
    return []
