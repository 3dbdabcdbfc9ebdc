"""The one door to LiteLLM: ``complete`` and ``embed``. Every call is billed to the current meter
(hold the maximum first, settle the usage after), so an LLM call outside a metered node is refused.

Offline mode (``SPOJIT_LLM_MODE=mock``, the default when no provider key is set) goes through
LiteLLM's own ``mock_response`` path with usage computed from the real prompt
(``litellm.token_counter``) and a deterministic reply, so the demo and the tests exercise the real
pricing code with no network. LiteLLM is imported lazily (≈ 3 s) and with its local price map.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import lru_cache
from typing import Any

from spojit_engine.metering.core.pricing import TokenUsage
from spojit_engine.metering.meter.node_meter import current_meter
from spojit_engine.settings import get_settings

PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY",
                 "AZURE_API_KEY", "GROQ_API_KEY", "TOGETHERAI_API_KEY")  # fmt: skip
EMBEDDING_DIMENSIONS_MOCK = 64


@lru_cache(maxsize=1)
def litellm_module() -> Any:
    """``import litellm`` with the local price map (no fetch, no background swap) and quiet logs."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def llm_mode() -> str:
    """``live`` or ``mock``: the setting, else live only when a provider key is present."""
    configured = get_settings().llm_mode
    if configured:
        return configured
    return "live" if any(os.environ.get(k) for k in PROVIDER_KEYS) else "mock"


def _usage_of(response: Any, model: str) -> TokenUsage:
    usage = response.usage
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    # The model the provider answered with wins: a snapshot is priced at the snapshot's price.
    return TokenUsage(
        model=getattr(response, "model", None) or model,
        tokens_in=int(usage.prompt_tokens or 0),
        tokens_out=int(usage.completion_tokens or 0),
        tokens_cached=int(cached),
    )


def complete(
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int = 512,
    tools: list[dict[str, Any]] | None = None,
    response_format: Any = None,
    mock_reply: str | None = None,
    mock_tool_calls: list[dict[str, Any]] | None = None,
) -> Any:
    """One chat completion, billed to the current node. In mock mode the reply is ``mock_reply``
    (or ``mock_tool_calls``), with usage counted from the real prompt and reply."""
    meter = current_meter(f"LLM call to {model}")
    litellm = litellm_module()
    prompt_tokens = int(litellm.token_counter(model=model, messages=messages))
    with meter.llm_call(model, prompt_tokens, max_tokens) as settlement:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
        if tools:
            kwargs["tools"] = tools
            # litellm 1.106.2 imports its MCP bridge (and the optional `mcp` package) whenever
            # tools are passed; we never use MCP tools.
            kwargs["_skip_mcp_handler"] = True
        if response_format is not None and llm_mode() == "live":
            kwargs["response_format"] = response_format
        if llm_mode() == "mock":
            kwargs["mock_response"] = _mock_response(
                litellm, model, prompt_tokens, max_tokens, mock_reply, mock_tool_calls
            )
        response = litellm.completion(**kwargs)
        settlement.usage = _usage_of(response, model)
    return response


def _mock_response(
    litellm: Any,
    model: str,
    prompt_tokens: int,
    max_tokens: int,
    reply: str | None,
    tool_calls: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_calls else (reply or ""),
    }
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
            for i, c in enumerate(tool_calls)
        ]  # fmt: skip
        reply_text = json.dumps(message["tool_calls"])
    else:
        reply_text = reply or ""
    completion_tokens = min(max_tokens, int(litellm.token_counter(model=model, text=reply_text)))
    return {
        "model": model,
        "choices": [{"finish_reason": "tool_calls" if tool_calls else "stop", "message": message}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }  # fmt: skip


def embed(model: str, texts: list[str]) -> list[list[float]]:
    """Embedding vectors for ``texts``, billed by their tokens. Mock mode: deterministic
    feature-hashed vectors, so offline search still finds the documents that share words."""
    meter = current_meter(f"embedding call to {model}")
    litellm = litellm_module()
    tokens = sum(int(litellm.token_counter(model=model, text=t)) for t in texts)
    with meter.llm_call(model, tokens, 0) as settlement:
        if llm_mode() == "mock":
            vectors = [hashed_embedding(t) for t in texts]
            settlement.usage = TokenUsage(model, tokens, 0)
            return vectors
        response = litellm.embedding(model=model, input=texts)
        settlement.usage = TokenUsage(
            getattr(response, "model", None) or model, int(response.usage.prompt_tokens or 0), 0
        )
        return [list(item["embedding"]) for item in response.data]


def hashed_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS_MOCK) -> list[float]:
    """A unit vector from hashed lower-cased words: similar texts point the same way."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()[]")
        if word:
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
