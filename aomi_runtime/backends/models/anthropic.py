"""Anthropic's Messages API through its official SDK: streamed text, tool use, retries and timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic

from ...agent.apps import ModelSpec
from ...agent.errors import ModelUnavailable
from ...agent.protocols import ModelChunk, ModelRequest, TextDelta, ToolCallRequest, Usage
from ._errors import provider_error

DEFAULT_MAX_TOKENS = 1024


def to_anthropic_messages(request: ModelRequest) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt, and the conversation as alternating user and assistant turns of content blocks."""
    system = [request.system] if request.system else []
    turns: list[dict[str, Any]] = []

    def add(role: str, block: dict[str, Any]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": role, "content": [block]})

    for m in request.messages:
        if m.role == "system":
            system.append(m.content)
        elif m.role == "tool":
            add("user", {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content})
        elif m.role == "user":
            add("user", {"type": "text", "text": m.content})
        else:
            if m.content:
                add("assistant", {"type": "text", "text": m.content})
            for c in m.tool_calls:
                add("assistant", {"type": "tool_use", "id": c.call_id, "name": c.name, "input": c.arguments})
    return "\n\n".join(system), turns


class AnthropicMessages:
    """A `ModelProvider` for Anthropic's Messages API."""

    def __init__(self, spec: ModelSpec, api_key: str | None) -> None:
        self._spec = spec
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=spec.base_url, timeout=spec.timeout_seconds, max_retries=spec.max_retries
        )

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        system, messages = to_anthropic_messages(request)
        options = {"max_tokens": DEFAULT_MAX_TOKENS, **self._spec.options}
        tools = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools]
        with_tools: dict[str, Any] = {"tools": tools} if tools else {}
        try:
            async with self._client.messages.stream(
                model=self._spec.model,
                system=system,
                messages=messages,  # type: ignore[arg-type]  # plain dicts, not the SDK's TypedDicts
                **with_tools,
                **options,
            ) as stream:
                async for event in stream:
                    if event.type == "text":
                        yield TextDelta(text=event.text)
                final = await stream.get_final_message()
        except anthropic.AnthropicError as exc:
            raise provider_error(self._spec, exc, anthropic) from exc
        for block in final.content:
            if block.type == "tool_use":
                if not isinstance(block.input, dict):
                    raise ModelUnavailable(
                        f"The model {self._spec.label!r} called {block.name} with arguments that are not an object."
                    )
                yield ToolCallRequest(call_id=block.id, name=block.name, arguments=block.input)
        yield Usage(input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens)
