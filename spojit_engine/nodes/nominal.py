"""Nodes of nominal cost that do one small thing each: Trigger, Response, Variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spojit_engine.nodes.base import Node


class Trigger(Node):
    """Where a workflow starts: passes the run's input on. ``schedule`` (cron) and ``webhook``
    describe how deployments start it (``spojit deploy``)."""

    family = "trigger"

    def __init__(self, name: str = "trigger", *, cron: str | None = None,
                 webhook: bool = False) -> None:  # fmt: skip
        super().__init__(name)
        self.cron = cron
        self.webhook = webhook

    def run(self, value: Any) -> Any:
        return value


class Response(Node):
    """The workflow's answer: ``render`` (a function, or a ``str.format`` template over a dict
    input) shapes the last step's output."""

    family = "response"

    def __init__(self, name: str, render: Callable[[Any], Any] | str | None = None) -> None:
        super().__init__(name)
        self.render = render

    def run(self, value: Any) -> Any:
        if self.render is None:
            return value
        if isinstance(self.render, str):
            return (
                self.render.format(**value)
                if isinstance(value, dict)
                else self.render.format(value)
            )
        return self.render(value)


class Variable(Node):
    """Sets a named value on a dict input (``{**input, name: value}``); a non-dict input becomes
    ``{name: value, "input": input}``."""

    family = "variable"

    def __init__(self, name: str, value: Any) -> None:
        super().__init__(name)
        self.value = value

    def run(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {**value, self.name: self.value}
        return {self.name: self.value, "input": value}
