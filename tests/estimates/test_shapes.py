"""Estimation reads nodes through protocols (it sits below ``nodes``): every node family
satisfies the shape the planner and the advisor read it as, and the package's face is pinned."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

import spojit_engine.estimation as estimation
from spojit_engine.estimation import shapes
from spojit_engine.nodes import (
    Condition,
    Connector,
    Knowledge,
    Loop,
    Node,
    Parallel,
    Response,
    Transform,
    Trigger,
    Variable,
    Workflow,
)
from spojit_engine.nodes.vector_index import VectorIndex


class Person(BaseModel):
    name: str


def lookup(domain: str) -> str:
    """Look up a company."""
    return domain


def test_the_face_is_pinned_and_every_name_resolves() -> None:
    assert estimation.__all__ == ["Advice", "Estimate", "advise", "estimate"]
    for name in estimation.__all__:
        assert getattr(estimation, name) is not None


def test_every_node_family_satisfies_the_shape_it_is_read_as(tmp_path: Path) -> None:
    agent = Connector("agent", mode="agent", tools=[lookup])
    structured = Transform("extract", mode="structured", schema=Person)
    knowledge = Knowledge("kb", VectorIndex("kb", path=tmp_path / "kb.db"))
    loop = Loop("each", agent, test_sample=2)
    condition = Condition("if", bool, then=structured)
    parallel = Parallel("both", [agent, structured])
    variable = Variable("v", 1)
    cases: list[tuple[Node, type, object]] = [
        (agent, shapes.AgentShape, shapes.is_agent),
        (structured, shapes.StructuredShape, shapes.is_structured),
        (knowledge, shapes.KnowledgeShape, shapes.is_knowledge),
        (loop, shapes.LoopShape, shapes.is_loop),
        (condition, shapes.ConditionShape, shapes.is_condition),
        (parallel, shapes.ParallelShape, shapes.is_parallel),
        (variable, shapes.VariableShape, shapes.is_variable),
    ]
    for node, shape, guard in cases:
        assert isinstance(node, shape), (node, shape)
        assert guard(node) is True  # type: ignore[operator]
    assert shapes.is_trigger(Trigger()) and not shapes.is_trigger(Response("r"))
    assert isinstance(Workflow("w", [Trigger(), loop]), shapes.WorkflowShape)
    assert shapes.children(loop) == [agent]
    assert shapes.children(condition) == [structured]
    assert shapes.children(parallel) == [agent, structured]


@pytest.mark.parametrize(
    "node",
    [
        Connector("direct", dict),
        Transform("map", lambda v: v),
        Response("done"),
    ],
)
def test_other_nodes_are_read_by_their_base_price_alone(node: Node) -> None:
    guards = (shapes.is_agent, shapes.is_structured, shapes.is_knowledge, shapes.is_loop,
              shapes.is_condition, shapes.is_parallel, shapes.is_variable)  # fmt: skip
    assert not any(guard(node) for guard in guards)
    assert shapes.children(node) == []
