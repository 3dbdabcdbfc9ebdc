"""Transform: ``mode="map"`` shapes data with a plain function (nominal); ``mode="structured"``
asks an LLM to fill a pydantic schema (base + the LLM call), with a model chosen per step —
pick a small model for routine steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from spojit_engine import llm
from spojit_engine.errors import InvalidInput
from spojit_engine.nodes.base import Node
from spojit_engine.nodes.mock_values import example_of


class Transform(Node):
    family = "transform"
    modes = ("map", "structured")

    def __init__(
        self,
        name: str,
        fn: Callable[[Any], Any] | None = None,
        *,
        mode: str = "map",
        schema: type[BaseModel] | None = None,
        model: str = "gpt-4o-mini",
        instructions: str = "Extract the fields of the schema from the input.",
        max_tokens: int = 512,
        retries: int = 0,
    ) -> None:
        super().__init__(name, mode=mode, retries=retries)
        if mode == "map" and fn is None:
            raise InvalidInput(f"Transform {name!r} in map mode needs a function.")
        if mode == "structured" and schema is None:
            raise InvalidInput(f"Transform {name!r} in structured mode needs a pydantic schema.")
        self.fn = fn
        self.schema = schema
        self.model = model
        self.instructions = instructions
        self.max_tokens = max_tokens

    @cached_property
    def _system_prompt(self) -> str:
        assert self.schema is not None
        schema_json = json.dumps(self.schema.model_json_schema())
        return f"{self.instructions} Answer with JSON matching: {schema_json}"

    def messages_for(self, value: Any) -> list[dict[str, Any]]:
        """The structured call's messages for ``value`` (estimates count their tokens)."""
        return [
            {"role": "system", "content": self._system_prompt},
            {"role": "user", "content": _text(value)},
        ]  # fmt: skip

    def answer_example(self, value: Any) -> str:
        """The offline (mock) answer for ``value``: the schema's example values as JSON (the
        typical answer an estimate counts)."""
        assert self.schema is not None
        return json.dumps(example_of(self.schema, _text(value)))

    def run(self, value: Any) -> Any:
        if self.mode == "map":
            assert self.fn is not None
            return self.fn(value)
        assert self.schema is not None
        response = llm.complete(
            self.model, self.messages_for(value), max_tokens=self.max_tokens,
            response_format=self.schema, mock_reply=self.answer_example(value),
        )  # fmt: skip
        return self.schema.model_validate_json(response.choices[0].message.content or "{}")


def _text(value: Any) -> str:
    """What the LLM is sent of ``value``: a string as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
