"""Server-Sent Events framing for `GET /api/updates`: one event a frame, its seq as the `id:` line."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prometheus_client import Gauge
from pydantic_core import to_json

from ..actors.runtime import Runtime
from ..agent.models import Event

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


async def event_stream(
    runtime: Runtime, session_id: str, after: int, keepalive: float, open_streams: Gauge
) -> AsyncIterator[bytes]:
    """Replay the events after `after`, then follow live ones; a comment at least every `keepalive` seconds.

    Ends only when the client goes (Serve then cancels this generator); the session's turn goes on.
    """
    open_streams.inc()
    try:
        yield KEEP_ALIVE  # sent at once, so the client knows the stream is open
        while True:
            events = await runtime.events_after(session_id, after, keepalive)
            if not events:
                yield KEEP_ALIVE
                continue
            yield b"".join(frame(e) for e in events)
            after = events[-1].seq
    finally:
        open_streams.dec()
