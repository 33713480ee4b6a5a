"""A local model provider speaking the real wire protocols: OpenAI's chat completions and Anthropic's Messages,
both streamed as SSE, with tool-call deltas and error statuses. It runs in a thread of the test process and
records every request, so tests can see what each App's model was shown.

What it answers, by the last user message:
    "call NAME {json}"  a tool call, its arguments split over several deltas; after the result, "Tool said: ..."
    "fail"              500, every time
    "busy"              429 on the first try, then an answer (the SDK's retry)
    "hang"              nothing, for a minute
    anything else       "Echo: <message>", in three chunks
Each streamed answer reports its usage (OpenAI's when the request asks with `stream_options.include_usage`):
`usage(body, chunks)`'s input and output tokens, which it records in `usage_sent`.
A title request (its system prompt asks for a "short title") gets, as a chatty model might answer, a quoted first
line ending in a period, naming the protocol and the last user message, then a second line:
`"GPT title: <message>."` (OpenAI) or `"Claude title: <message>."` (Anthropic); the automatic title keeps
`GPT title: <message>` or `Claude title: <message>`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import free_port


def usage(body: dict[str, Any], chunks: int) -> tuple[int, int]:
    """The tokens an answer reports: a quarter of its request's messages' JSON in, a token per chunk out."""
    return len(json.dumps(body.get("messages", []))) // 4, chunks


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.usage_sent: list[tuple[int, int]] = []  # (input, output tokens), by answer
        self.keys: list[tuple[str, str]] = []  # (the last user message, the API key it was sent with), in order
        self._tries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r.get("model") == model]

    # --- deciding --------------------------------------------------------------------------------

    def _decide(self, last_user: str, tool_result: str | None, is_title: bool, who: str) -> tuple[str, Any]:
        if is_title:
            return "text", ['"', f"{who} title: ", last_user, '."', "\nI hope this title helps."]
        if tool_result is not None:
            return "text", ["Tool said: ", tool_result]
        if last_user.startswith("call "):
            name, _, args = last_user[5:].partition(" ")
            return "tool", (name, args or "{}")
        if last_user == "fail":
            return "status", 500
        if last_user == "busy":
            with self._lock:
                self._tries[last_user] += 1
                first = self._tries[last_user] % 2 == 1
            return ("status", 429) if first else ("text", ["Not ", "busy ", "now"])
        if last_user == "hang":
            return "hang", 60
        return "text", ["Echo: ", last_user[: len(last_user) // 2], last_user[len(last_user) // 2 :]]

    async def _record(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        # OpenAI's SDK sends the key as a bearer token, Anthropic's in x-api-key.
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        last = users[-1]["content"] if users else ""
        with self._lock:
            self.requests.append(body)
            self.keys.append((last if isinstance(last, str) else str(last), key))
        return body

    # --- OpenAI ----------------------------------------------------------------------------------

    async def _openai(self, request: Request) -> Response:
        body = await self._record(request)
        messages = body["messages"]
        last = messages[-1]
        is_title = any(m["role"] == "system" and "short title" in (m.get("content") or "") for m in messages)
        users = [m for m in messages if m["role"] == "user"]
        kind, what = self._decide(
            users[-1]["content"] if users else "", last["content"] if last["role"] == "tool" else None, is_title, "GPT"
        )
        if kind == "status":
            error = {"error": {"message": f"fake provider says {what}", "type": "server_error", "code": None}}
            return JSONResponse(error, status_code=what, headers={"retry-after-ms": "10"})
        if kind == "hang":
            await asyncio.sleep(what)
            return JSONResponse({"error": {"message": "slept", "type": "timeout"}}, status_code=504)
        return StreamingResponse(self._openai_chunks(body, kind, what), media_type="text/event-stream")

    async def _openai_chunks(self, body: dict[str, Any], kind: str, what: Any) -> AsyncIterator[str]:
        model, sent = body["model"], 0

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **more: Any) -> str:
            nonlocal sent
            sent += 1
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
                **more,
            }
            return f"data: {json.dumps(payload)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        if kind == "text":
            for piece in what:
                yield chunk({"content": piece})
            yield chunk({}, "stop")
        else:
            name, args = what
            third = max(1, len(args) // 3)
            yield chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_fake", "type": "function", "function": {"name": name, "arguments": ""}}
                    ]
                }
            )
            for start in range(0, len(args), third):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[start : start + third]}}]})
            yield chunk({}, "tool_calls")
        if (body.get("stream_options") or {}).get("include_usage"):  # as OpenAI: a last chunk with no choices
            tokens_in, tokens_out = usage(body, sent)
            with self._lock:
                self.usage_sent.append((tokens_in, tokens_out))
            counts = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out}
            yield chunk(None, usage={**counts, "total_tokens": tokens_in + tokens_out})
        yield "data: [DONE]\n\n"

    # --- Anthropic -------------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        body = await self._record(request)
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
        result = next((b["content"] for b in blocks if b["type"] == "tool_result"), None)
        text = next((b["text"] for b in reversed(blocks) if b["type"] == "text"), "")
        is_title = "short title" in str(body.get("system", ""))
        if is_title:  # the conversation so far, which ends with the model's answer: named by its last user message
            said = [m["content"] for m in body["messages"] if m["role"] == "user"][-1:] or [""]
            said_blocks = said[0] if isinstance(said[0], list) else [{"type": "text", "text": said[0]}]
            text = next((b["text"] for b in reversed(said_blocks) if b["type"] == "text"), "")
        kind, what = self._decide(text, result, is_title, "Claude")
        if kind == "status":
            error = {"type": "error", "error": {"type": "api_error", "message": f"fake provider says {what}"}}
            return JSONResponse(error, status_code=what, headers={"retry-after-ms": "10"})
        if kind == "hang":
            await asyncio.sleep(what)
            return JSONResponse({"type": "error", "error": {"type": "timeout", "message": "slept"}}, status_code=504)
        return StreamingResponse(self._anthropic_events(body, kind, what), media_type="text/event-stream")

    async def _anthropic_events(self, body: dict[str, Any], kind: str, what: Any) -> AsyncIterator[str]:
        def event(type_: str, **data: Any) -> str:
            return f"event: {type_}\ndata: {json.dumps({'type': type_, **data})}\n\n"

        tokens_in, tokens_out = usage(body, len(what) if kind == "text" else 3)
        with self._lock:
            self.usage_sent.append((tokens_in, tokens_out))
        started = {"input_tokens": tokens_in, "output_tokens": 1}
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": body["model"],
                   "stop_reason": None, "stop_sequence": None, "usage": started}  # fmt: skip
        yield event("message_start", message=message)
        if kind == "text":
            yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            for piece in what:
                yield event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
            yield event("content_block_stop", index=0)
            stop = "end_turn"
        else:
            name, args = what
            block = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": {}}
            yield event("content_block_start", index=0, content_block=block)
            third = max(1, len(args) // 3)
            for start in range(0, len(args), third):
                delta = {"type": "input_json_delta", "partial_json": args[start : start + third]}
                yield event("content_block_delta", index=0, delta=delta)
            yield event("content_block_stop", index=0)
            stop = "tool_use"
        ended = {"stop_reason": stop, "stop_sequence": None}
        yield event("message_delta", delta=ended, usage={"output_tokens": tokens_out})
        yield event("message_stop")


@contextmanager
def running_fake_provider(keep_alive: int = 5) -> Iterator[tuple[FakeProvider, str]]:
    """Serve a `FakeProvider` on a free loopback port; yields it and its base URL. It closes a connection left
    idle for `keep_alive` seconds (uvicorn's default, 5)."""
    fake = FakeProvider()
    port = free_port()
    config = uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=keep_alive)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake provider did not start"
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
