"""A small SSE reader for tests: frames as (id, data) pairs, keep-alive comments counted."""

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
    after: int | None = None,
    last_event_id: int | None = None,
    past: int = 0,
    timeout: float = 20.0,
) -> Stream:
    """Open `/api/updates` and read until an event of type `until`, with seq above `past`, arrives."""
    stream = Stream()
    headers = {"X-Session-Id": session_id, "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {} if after is None else {"after": after}
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
