"""An httpx transport that calls the runtime's ASGI app in this process, streaming: the Python client's
in-cluster mode, where the routes of `API.md` run in the caller's process and reach the session actors over
Ray handles, with no HTTP server between. (httpx's own ASGITransport gathers a whole response before it
returns it, which an event stream never ends.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp, Message


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes], task: asyncio.Task[None], disconnected: asyncio.Event) -> None:
        self._chunks = chunks
        self._task = task
        self._disconnected = disconnected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._chunks.get():  # an empty chunk ends the body
            yield chunk

    async def aclose(self) -> None:
        # The client is done (or gone): tell the app, as a server would, then end its task.
        self._disconnected.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


class InProcessTransport(httpx.AsyncBaseTransport):
    """Serves each request by calling `app`; the response returns when its head is sent, its body streams."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (request.url.host, request.url.port or 80),
            "client": ("127.0.0.1", 0),
        }
        head: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        disconnected = asyncio.Event()
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                head.set_result(message)
            elif message["type"] == "http.response.body":
                if chunk := message.get("body", b""):
                    chunks.put_nowait(chunk)
                if not message.get("more_body", False):
                    chunks.put_nowait(b"")

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            except Exception as exc:
                if not head.done():
                    head.set_exception(exc)
            finally:
                if not head.done():
                    head.set_exception(RuntimeError("the app ended without answering"))
                chunks.put_nowait(b"")

        task = asyncio.create_task(run())
        try:
            start = await head
        except BaseException:
            task.cancel()
            raise
        return httpx.Response(
            start["status"],
            headers=start.get("headers", []),
            stream=_Body(chunks, task, disconnected),
            request=request,
        )
