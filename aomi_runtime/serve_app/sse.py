"""Server-Sent Events framing for `GET /api/updates`: one event a frame, its seq as the `id:` line."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import Gauge
from pydantic_core import to_json

from ..actors import event_streams
from ..actors.runtime import Runtime
from ..agent.records import Event

KEEP_ALIVE = b": keep-alive\n\n"


# JSON escapes every control character below U+0020, but not U+0085, U+2028 and U+2029, which clients that
# split lines as Python's str.splitlines does (httpx's aiter_lines, and SSE readers built on it) take for line ends,
# cutting the frame in two. Escaped, they decode to the same text.
UNESCAPED_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def frame(event: Event) -> bytes:
    # Compact JSON escapes \r and \n, so no text inside an event can end its frame.
    data = to_json(event.data)
    for raw, escaped in UNESCAPED_LINE_BREAKS:
        data = data.replace(raw, escaped)
    return b"id: %d\ndata: %s\n\n" % (event.seq, data)


def budget_spent(sent: int, after: int) -> bytes:
    return (
        b": this stream has sent its share (%d bytes of live events) and ends here; "
        b"reconnect with Last-Event-ID: %d to go on\n\n" % (sent, after)
    )


@dataclass
class EventStream:
    """One `GET /api/updates` stream: its id, counted by the session (which refuses one too many), and its budget.

    Serve gives a replica no backpressure: a frame yielded here is handed on at once, and frames a client does not
    read pile up in Serve's HTTP proxy (see `bench/slow_stream.py`). So a stream carries at most `max_bytes` of
    live events, then ends with a comment saying where to resume; replayed events do not count, so a client that
    resumes from the start is never cut off before it has caught up.
    """

    runtime: Runtime
    session_id: str
    start: int | None  # the seq to replay after; None: the live position, the seq published when the stream opens
    keepalive: float
    max_bytes: int
    open_streams: Gauge
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    live_from: int = 0  # the seq the session had published when the stream opened
    after: int = 0  # the last seq sent

    async def open(self, max_streams: int) -> None:
        """Raises `LimitReached` before any response has started."""
        self.live_from = await event_streams.open_stream(self.runtime, self.session_id, self.id, max_streams)
        self.after = self.live_from if self.start is None else self.start

    async def frames(self) -> AsyncIterator[bytes]:
        """Replay the events after `start`, then follow live ones; a comment at least every
        `keepalive` seconds.

        Ends when the client goes (Serve then cancels this generator) or the budget is spent; the turn goes on.
        """
        self.open_streams.inc()
        sent = 0
        try:
            yield KEEP_ALIVE  # sent at once, so the client knows the stream is open
            while True:
                events = await event_streams.events_after(
                    self.runtime, self.session_id, self.after, self.keepalive, self.id
                )
                if not events:
                    yield KEEP_ALIVE
                    continue
                chunk = b"".join(frame(e) for e in events)
                yield chunk
                self.after = events[-1].seq
                if self.after > self.live_from:
                    sent += len(chunk)
                    if sent >= self.max_bytes:
                        yield budget_spent(sent, self.after)
                        return
        finally:
            self.open_streams.dec()
            event_streams.close_stream(self.runtime, self.session_id, self.id)
