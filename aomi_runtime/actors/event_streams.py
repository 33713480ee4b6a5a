"""An event stream's calls (`GET /api/updates`), routed to its session's actor by a replica's `Runtime`: the
stream counted open, its waits for the next events, and its close. A wait may come before the session exists (a
client subscribing before its first message), so it waits for the session to appear, not only for events."""

from __future__ import annotations

import asyncio

import ray

from ..agent.errors import SessionNotFound
from ..agent.records import Event
from .runtime import GONE, Runtime


async def open_stream(runtime: Runtime, session_id: str, stream: str, max_streams: int) -> int:
    """Count an event stream on a live or stored session; returns the seq it had published (0 for a session
    that does not exist yet: its streams are counted from their first wait once it does).

    Raises:
        LimitReached: the session has `max_streams` open already.
    """
    try:
        # Found again if its actor went: a stream starting at the live position must not take 0 for it.
        published: int = await runtime.call(session_id, "open_stream", stream, max_streams)
    except SessionNotFound:
        return 0
    return published


def close_stream(runtime: Runtime, session_id: str, stream: str) -> None:
    """Stop counting a stream (told, not awaited; a stream never closed runs out its lease)."""
    if (handle := runtime.live_handle(session_id)) is not None:
        handle.close_stream.remote(session_id, stream)


async def events_after(
    runtime: Runtime, session_id: str, after: int, timeout: float, stream: str | None = None
) -> list[Event]:
    """The next events of a session, waiting up to `timeout`; a session not created yet is waited for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found = await runtime.resolve(session_id, app=None, create=False, wait=timeout)
    remaining = deadline - loop.time()  # one wait in all, so the caller can keep its stream alive
    if found is None or remaining <= 0:
        return []
    waiting = found.handle.events_after.remote(session_id, after, remaining, stream)
    try:
        events: list[Event] = await waiting
    except GONE:
        runtime.forget(session_id)
        await runtime.resolve(session_id, app=None, create=False, stale=found.handle)
        return []
    except asyncio.CancelledError:
        ray.cancel(waiting)  # the stream's client went: end its wait in the session actor now
        raise
    return events
