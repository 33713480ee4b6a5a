"""A small SSE reader for tests: frames as (id, data) pairs, keep-alive comments counted, the stream's opening
comment (which the runtime sends as soon as the stream is open) awaitable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Stream:
    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    comments: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)  # set on the first comment

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.frames]

    @property
    def types(self) -> list[str]:
        return [data["type"] for _, data in self.frames]


async def frames(response: httpx.Response, stream: Stream) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Parse the body of an SSE response, checking every frame is well formed."""
    seq: int | None = None
    data: dict[str, Any] | None = None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            stream.comments += 1
            stream.opened.set()
        elif line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            assert data is None, "one data line per frame"
            data = json.loads(line[6:])
        elif line == "":
            if seq is not None or data is not None:
                assert seq is not None and data is not None, f"incomplete frame: id={seq} data={data}"
                stream.frames.append((seq, data))
                yield seq, data
            seq, data = None, None
        else:
            raise AssertionError(f"unexpected SSE line: {line!r}")


async def read_until(
    client: httpx.AsyncClient,
    session_id: str,
    until: str,
    *,
    after: int | None = 0,
    last_event_id: int | None = None,
    past: int = 0,
    timeout: float = 20.0,
    stream: Stream | None = None,
) -> Stream:
    """Open `/api/updates` and read until an event of type `until`, with seq above `past`, arrives; into `stream`
    if given, whose `opened` a caller can wait for. From the first event unless told (`after=None` and no
    `last_event_id`: the live position, as Aomi's client asks)."""
    stream = Stream() if stream is None else stream
    headers = {"X-Session-Id": session_id, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {} if after is None or last_event_id is not None else {"after": after}
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("GET", "/api/updates", headers=headers, params=params) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for seq, data in frames(response, stream):
                    if data["type"] == until and seq > past:
                        return stream
    except TimeoutError:
        raise AssertionError(f"no {until} within {timeout}s; saw {stream.types}") from None
    raise AssertionError(f"stream ended before {until}; saw {stream.types}")


async def reading(client: httpx.AsyncClient, session_id: str, until: str, **options: Any) -> asyncio.Task[Stream]:
    """`read_until` started in a task, returned once its stream is open: the runtime has sent the comment it sends
    at once when a stream opens, so whatever the caller does next happens with the stream there."""
    stream = Stream()
    reader = asyncio.create_task(read_until(client, session_id, until, stream=stream, **options))
    opened = asyncio.create_task(stream.opened.wait())
    await asyncio.wait({reader, opened}, return_when=asyncio.FIRST_COMPLETED)
    if not opened.done():  # the reader ended first: its error says why
        opened.cancel()
        await reader
        raise AssertionError(f"the stream ended before it opened; saw {stream.types}")
    return reader
