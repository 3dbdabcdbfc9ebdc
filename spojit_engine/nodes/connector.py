"""Connector: ``mode="direct"`` makes one deterministic tool call (its base price per call);
``mode="agent"`` lets an LLM choose among tools through LiteLLM function calling, over as many
round trips as it needs (at most ``max_round_trips``), each round trip billed.

Use Direct mode whenever the tool call is deterministic; Agent mode is worth its cost only when
the LLM must choose. Offline, the mock LLM calls each tool once, in order, then answers: a
two-tool agent makes three round trips.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

from spojit_engine import llm
from spojit_engine.errors import InvalidInput
from spojit_engine.metering.meter.node_meter import current_meter
from spojit_engine.nodes.base import Node

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def tool_schema(tool: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI function-calling schema of a plain Python function."""
    properties = {}
    required = []
    for name, param in inspect.signature(tool).parameters.items():
        properties[name] = {"type": _JSON_TYPES.get(param.annotation, "string")}
        if param.default is inspect.Parameter.empty:
            required.append(name)
    return {
        "type": "function",
        "function": {
            "name": tool.__name__,
            "description": (inspect.getdoc(tool) or tool.__name__).splitlines()[0],
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _arguments_from(tool: Callable[..., Any], value: Any) -> dict[str, Any]:
    """What the mock LLM passes a tool: matching keys of a dict input, else the input as text."""
    names = list(inspect.signature(tool).parameters)
    if isinstance(value, dict):
        return {n: value.get(n, json.dumps(value, default=str)) for n in names}
    return dict.fromkeys(names[:1], str(value))


class Connector(Node):
    family = "connector"
    modes = ("direct", "agent")

    def __init__(
        self,
        name: str,
        tool: Callable[[Any], Any] | None = None,
        *,
        mode: str = "direct",
        tools: Sequence[Callable[..., Any]] = (),
        model: str = "gpt-4o-mini",
        instructions: str = "Use the tools to complete the task, then answer briefly.",
        max_round_trips: int = 5,
        max_tokens: int = 256,
        retries: int = 0,
    ) -> None:
        super().__init__(name, mode=mode, retries=retries)
        if mode == "direct" and tool is None:
            raise InvalidInput(f"Connector {name!r} in direct mode needs a tool.")
        if mode == "agent" and not tools:
            raise InvalidInput(f"Connector {name!r} in agent mode needs tools to choose from.")
        if not 1 <= max_round_trips <= 50:
            raise InvalidInput(f"Connector {name!r}: max_round_trips must be 1-50.")
        self.tool = tool
        self.tools = {t.__name__: t for t in tools}
        self.model = model
        self.instructions = instructions
        self.max_round_trips = max_round_trips
        self.max_tokens = max_tokens

    def run(self, value: Any) -> Any:
        if self.mode == "direct":
            assert self.tool is not None
            return self.tool(value)
        return self._agent(value)

    def messages_for(self, value: Any) -> list[dict[str, Any]]:
        """An agent's first round trip's messages for ``value`` (estimates count their tokens)."""
        return [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": json.dumps(value, default=str)},
        ]

    def _agent(self, value: Any) -> dict[str, Any]:
        messages = self.messages_for(value)
        schemas = [tool_schema(t) for t in self.tools.values()]
        results: dict[str, Any] = {}
        planned = list(self.tools.values())  # the mock LLM's plan: each tool once, in order
        for trip in range(self.max_round_trips):
            next_tool = planned[trip] if trip < len(planned) else None
            mock_calls = (
                [{"name": next_tool.__name__, "arguments": _arguments_from(next_tool, value)}]
                if next_tool else None
            )  # fmt: skip
            response = llm.complete(
                self.model, messages, tools=schemas, max_tokens=self.max_tokens,
                mock_tool_calls=mock_calls, mock_reply=json.dumps(results, default=str),
            )  # fmt: skip
            message = response.choices[0].message
            calls = message.tool_calls or []
            if not calls:
                return {"answer": message.content, "tool_results": results, "round_trips": trip + 1}
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in calls]})  # fmt: skip
            current_meter(f"agent {self.name}").tools.extend(c.function.name for c in calls)
            for call in calls:
                output = self._call_tool(call.function.name, call.function.arguments)
                results[call.function.name] = output
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": json.dumps(output, default=str)})  # fmt: skip
        return {"answer": None, "tool_results": results, "round_trips": self.max_round_trips}

    def _call_tool(self, name: str, arguments: str) -> Any:
        tool = self.tools.get(name)
        if tool is None:
            return {"error": f"no tool named {name}"}
        try:
            kwargs = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return {"error": "arguments were not JSON"}
        return tool(**kwargs)
