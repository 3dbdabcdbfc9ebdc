"""Deterministic example values for a pydantic schema: what an offline (mock) LLM answers."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel


def example_of(schema: type[BaseModel], text: str) -> dict[str, Any]:
    """A valid instance of ``schema`` as a dict, its strings drawn from ``text``."""
    return {
        name: _value(field.annotation, name, text) for name, field in schema.model_fields.items()
    }


def _value(annotation: Any, name: str, text: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), name, text)
    if origin in (list, tuple, set, frozenset):
        return [_value(args[0], name, text)] if args else []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example_of(annotation, text)
    if annotation is bool:
        return len(text) % 2 == 0
    if annotation is int:
        return len(text.split())
    if annotation is float:
        return round(min(1.0, len(text) / 1000), 3)
    words = text.split()
    return " ".join(words[:8]) if words else name
