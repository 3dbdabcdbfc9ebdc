"""Workflow nodes. Each family is metered by its price-book key (``connector.agent``, ``loop``…)."""

from spojit_engine.nodes.base import Node
from spojit_engine.nodes.connector import Connector
from spojit_engine.nodes.control import Condition, Loop, Parallel
from spojit_engine.nodes.knowledge import Knowledge
from spojit_engine.nodes.nominal import Response, Trigger, Variable
from spojit_engine.nodes.transform import Transform
from spojit_engine.nodes.workflow import Workflow

__all__ = [
    "Condition", "Connector", "Knowledge", "Loop", "Node", "Parallel", "Response", "Transform",
    "Trigger", "Variable", "Workflow",
]  # fmt: skip
