"""OpenAI-compatible chat completions through the official SDK: OpenAI, vLLM, Ollama, LiteLLM and most hosts.

Text and tool calls are streamed; the SDK retries connection errors, 408, 409, 429 and 5xx with backoff
(`max_retries`), and `timeout_seconds` bounds each wait for the provider, also between streamed chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai

from ...agent.apps import ModelSpec
from ...agent.errors import ModelUnavailable
from ...agent.protocols import ModelChunk, ModelMessage, ModelRequest, TextDelta, ToolCallRequest, Usage
from ._errors import provider_error

NO_KEY = "no-key"  # local servers (Ollama, vLLM) take any key, and the SDK insists on one


def to_openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for m in request.messages:
        out.append(_message(m))
    return out


def _message(m: ModelMessage) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        calls = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in m.tool_calls
        ]
        return {"role": "assistant", "content": m.content or None, "tool_calls": calls}
    return {"role": m.role, "content": m.content}


class OpenAICompatible:
    """A `ModelProvider` for any server that speaks OpenAI's chat completions."""

    def __init__(self, spec: ModelSpec, api_key: str | None) -> None:
        self._spec = spec
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=spec.base_url,
            timeout=spec.timeout_seconds,
            max_retries=spec.max_retries,
        )

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        await self._client.close()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        tools = [{"type": "function", "function": t.model_dump()} for t in request.tools]
        with_tools: dict[str, Any] = {"tools": tools} if tools else {}
        calls: dict[int, dict[str, str]] = {}
        usage: Usage | None = None
        # The usage in a last chunk of its own (OpenAI, vLLM, Ollama, LiteLLM send it when asked); a server that
        # refuses the option is configured with `options: {stream_options: null}`.
        options = {"stream_options": {"include_usage": True}, **self._spec.options}
        try:
            chunks = await self._client.chat.completions.create(
                model=self._spec.model,
                messages=to_openai_messages(request),  # type: ignore[arg-type]  # plain dicts, not the SDK's TypedDicts
                stream=True,
                **with_tools,
                **options,
            )
            # Always a stream (`stream=True`); mypy cannot tell, as to it the options might name `stream` again.
            assert isinstance(chunks, openai.AsyncStream)
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = Usage(input_tokens=chunk.usage.prompt_tokens, output_tokens=chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    yield TextDelta(text=delta.content)
                for part in delta.tool_calls or ():
                    call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = part.id or call["id"]
                    if part.function is not None:
                        call["name"] += part.function.name or ""
                        call["arguments"] += part.function.arguments or ""
        except openai.OpenAIError as exc:
            raise provider_error(self._spec, exc, openai) from exc
        for index in sorted(calls):
            call = calls[index]
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise ModelUnavailable(
                    f"The model {self._spec.label!r} called {call['name']} with arguments that are not a JSON object."
                )
            yield ToolCallRequest(call_id=call["id"] or None, name=call["name"], arguments=arguments)
        if usage is not None:
            yield usage
