"""The offline scripted model: deterministic replies, tool calls and failures, decided by phrases.

| the user's message      | the reply                                                              |
|-------------------------|------------------------------------------------------------------------|
| `count to N`            | the numbers 1..N, one chunk each, `count_pause` seconds apart          |
| `/tool NAME {json}`     | calls tool NAME with those arguments, then a sentence about its result |
| `/error TEXT`           | the model fails with TEXT (the turn ends with a `SystemError`)         |
| `/tools`                | the names of the tools it was offered                                  |
| `/system`               | the system prompt it was given (App prompt, user state, notices)       |
| anything else           | `You said: "<message>"`, streamed a few words a chunk                  |

Titles: the first few words of the first user message.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from ...agent.errors import ModelUnavailable
from ...agent.protocols import ModelChunk, ModelMessage, ModelRequest, TextDelta, ToolCallRequest

COUNT = re.compile(r"\s*count to (\d+)\s*", re.IGNORECASE)
TOOL = re.compile(r"\s*/tool\s+(\S+)\s*(.*)", re.DOTALL)
ERROR = re.compile(r"\s*/error\b\s*(.*)", re.DOTALL)
MAX_COUNT = 100_000
TITLE_WORDS = 6
CHUNKS_PER_REPLY = 16


class ScriptedModel:
    """A `ModelProvider` that needs no network: the embedded default, and the model the tests drive."""

    def __init__(self, *, count_pause: float = 0.05, chunk_pause: float = 0.002) -> None:
        self.count_pause = count_pause
        self.chunk_pause = chunk_pause

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        if request.purpose == "title":
            yield TextDelta(text=_title(request.messages))
            return
        last = request.messages[-1] if request.messages else ModelMessage(role="user", content="")
        if last.role == "tool":
            async for chunk in self._say(_about_result(last)):
                yield chunk
            return
        text = last.content
        if match := COUNT.fullmatch(text):
            n = min(int(match.group(1)), MAX_COUNT)
            for i in range(1, n + 1):
                if i > 1:
                    await asyncio.sleep(self.count_pause)
                yield TextDelta(text=str(i) if i == 1 else f" {i}")
        elif match := TOOL.fullmatch(text):
            name, raw = match.group(1), match.group(2).strip()
            try:
                arguments = json.loads(raw) if raw else {}
            except ValueError as exc:
                arguments = exc
            if not isinstance(arguments, dict):
                async for chunk in self._say(
                    f"I could not read the arguments for {name}: send them as one JSON object."
                ):
                    yield chunk
                return
            # Deterministic: the call's place in the conversation, whatever else this model answered.
            yield ToolCallRequest(call_id=f"call_{len(request.messages)}", name=name, arguments=arguments)
        elif match := ERROR.fullmatch(text):
            raise ModelUnavailable(
                f"The scripted model failed, as asked: {match.group(1).strip() or 'no reason given'}"
            )
        elif text.strip() == "/tools":
            async for chunk in self._say("Tools: " + (", ".join(t.name for t in request.tools) or "none")):
                yield chunk
        elif text.strip() == "/system":
            async for chunk in self._say(request.system):
                yield chunk
        else:
            async for chunk in self._say(f'You said: "{text}"'):
                yield chunk

    async def _say(self, text: str) -> AsyncIterator[TextDelta]:
        words = re.findall(r"\S+\s*|\s+", text) or [text]
        per_chunk = max(1, -(-len(words) // CHUNKS_PER_REPLY))
        for start in range(0, len(words), per_chunk):
            if start:
                await asyncio.sleep(self.chunk_pause)
            yield TextDelta(text="".join(words[start : start + per_chunk]))

    async def aclose(self) -> None:
        """Nothing to release: the scripted model holds no connection."""


def _about_result(message: ModelMessage) -> str:
    try:
        result = json.loads(message.content)
    except ValueError:
        result = message.content
    if isinstance(result, dict) and "error" in result:
        return f"The {message.name} tool failed: {result['error']}"
    return f"The {message.name} tool returned: {message.content}"


def _title(messages: list[ModelMessage]) -> str:
    first = next((m.content for m in messages if m.role == "user" and m.content.strip()), "")
    words = first.split()
    title = " ".join(words[:TITLE_WORDS])
    return (title[:1].upper() + title[1:]) if title else ""
