"""The in-process transport of the client's in-cluster mode, on small ASGI apps: it streams, keeps the
read timeout as a socket would, and breaks a body off when the app fails mid-answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from aomi_runtime.client.bootstrap import InProcessTransport


async def slow_head(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(5)


async def trickle(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await asyncio.sleep(5)


async def fails_midway(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise RuntimeError("the route failed")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-path", scope["path"].encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b"!", "more_body": False})


def client(app: object, timeout: float = 0.3) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=InProcessTransport(app), base_url="http://in-cluster", timeout=timeout)  # type: ignore[arg-type]


async def test_a_request_gets_its_answer_streamed() -> None:
    async with client(echo) as c:
        r = await c.post("/a/path", content=b"hello")
    assert r.status_code == 201 and r.headers["x-path"] == "/a/path" and r.content == b"hello!"


async def test_no_answer_within_the_read_timeout_is_a_read_timeout() -> None:
    async with client(slow_head) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/")


async def test_a_body_that_stops_coming_is_a_read_timeout_after_what_came() -> None:
    got = []
    async with client(trickle) as c, c.stream("GET", "/") as r:
        with pytest.raises(httpx.ReadTimeout):
            async for chunk in r.aiter_bytes():
                got.append(chunk)
    assert got == [b"first"]


async def test_an_app_failing_midway_breaks_the_body_off(caplog: pytest.LogCaptureFixture) -> None:
    async with client(fails_midway) as c, c.stream("GET", "/") as r:
        with pytest.raises(httpx.ReadError):
            await r.aread()
    assert "answering GET" in caplog.text and "failed: RuntimeError" in caplog.text
