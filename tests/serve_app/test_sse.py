"""The SSE generator alone, over a fake runtime: a stream ends once it has carried its share of live events."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from aomi_runtime.agent.records import Event
from aomi_runtime.serve_app.sse import KEEP_ALIVE, EventStream


class FakeRuntime:
    """Hands out `events` a few at a time, as a session's log would; records what the stream tells it."""

    def __init__(self, events: list[Event], published: int) -> None:
        self.events = events
        self.published = published
        self.closed: list[str] = []

    async def open_stream(self, session_id: str, stream: str, max_streams: int) -> int:
        return self.published

    def close_stream(self, session_id: str, stream: str) -> None:
        self.closed.append(stream)

    async def events_after(self, session_id: str, after: int, timeout: float, stream: str | None = None) -> list[Any]:
        return [e for e in self.events if e.seq > after][:3]


def events(count: int, size: int = 100) -> list[Event]:
    notice = {"type": "system_notice", "session_id": "s", "message": "x" * size}
    return [Event(seq=i, data=notice) for i in range(1, count + 1)]


async def read(stream: EventStream, limit: int = 1000) -> list[bytes]:
    chunks = []
    async for chunk in stream.frames():
        chunks.append(chunk)
        if len(chunks) >= limit:
            break
    return chunks


def make(runtime: FakeRuntime, after: int, max_bytes: int) -> tuple[EventStream, Gauge]:
    gauge = Gauge("open", "open streams", registry=CollectorRegistry())
    stream = EventStream(runtime, "s", after=after, keepalive=1, max_bytes=max_bytes, open_streams=gauge)  # type: ignore[arg-type]
    return stream, gauge


async def test_a_stream_ends_once_it_has_carried_its_share_saying_where_to_resume() -> None:
    runtime = FakeRuntime(events(100), published=0)
    stream, gauge = make(runtime, after=0, max_bytes=2000)
    await stream.open(max_streams=4)
    chunks = await read(stream)
    assert chunks[0] == KEEP_ALIVE
    last = chunks[-1].decode()
    assert last.startswith(": this stream has sent its share") and f"Last-Event-ID: {stream.after}" in last
    body = b"".join(chunks[1:-1])
    assert 2000 <= len(body) < 2000 + 3 * 200  # it stops within one batch of its budget
    assert body.count(b"\nid: ") + 1 == stream.after < 100  # every event up to the one it names, none after
    assert gauge._value.get() == 0 and runtime.closed == [stream.id]


async def test_replayed_events_do_not_count_so_a_client_resuming_from_the_start_catches_up() -> None:
    runtime = FakeRuntime(events(100), published=80)  # 80 events already stored when the stream opens
    stream, _ = make(runtime, after=0, max_bytes=2000)
    await stream.open(max_streams=4)
    await read(stream)
    assert stream.after > 80
