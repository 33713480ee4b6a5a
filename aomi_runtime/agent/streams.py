"""Who watches one session: its open event streams, each holding a lease it renews, and its anonymous waiters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import LimitReached

STREAM_LEASE_SECONDS = 5.0  # an open stream not heard from for this long (beyond its wait) is counted gone


class Streams:
    """The event streams open on one session, by id, each with a lease, and the waiters that named no stream."""

    def __init__(self) -> None:
        self.waiting = 0  # callers of events_after waiting now without naming a stream
        self._leases: dict[str, float] = {}  # open event streams: id -> when its lease runs out

    @property
    def count(self) -> int:
        """Open streams whose lease has not run out, and anonymous waiters."""
        now = time.monotonic()
        for stream in [s for s, until in self._leases.items() if until < now]:
            del self._leases[stream]  # its replica went without closing it
        return len(self._leases) + self.waiting

    def open(self, stream: str, max_streams: int, session_id: str) -> None:
        """Count `stream` as open, if fewer than `max_streams` are.

        Raises:
            LimitReached: `max_streams` streams are open on this session already.
        """
        if stream not in self._leases and self.count - self.waiting >= max_streams:
            raise LimitReached(
                f"The session {session_id!r} already has {max_streams} open event streams, the most allowed; "
                "close one, or try again later."
            )
        self._leases[stream] = time.monotonic() + STREAM_LEASE_SECONDS

    def close(self, stream: str) -> None:
        self._leases.pop(stream, None)

    @contextmanager
    def watching(self, stream: str | None, timeout: float) -> Iterator[None]:
        """A wait of up to `timeout` for events: a named `stream` renews its lease for it and after it, and is
        closed if the wait is cancelled; a wait naming none counts as an anonymous waiter while it lasts."""
        if stream is None:
            self.waiting += 1
        else:
            self._leases[stream] = time.monotonic() + timeout + STREAM_LEASE_SECONDS
        try:
            yield
        except asyncio.CancelledError:
            if stream is not None:
                self.close(stream)  # its client went: the replica cancelled this wait
            raise
        finally:
            if stream is None:
                self.waiting -= 1
            elif stream in self._leases:
                self._leases[stream] = time.monotonic() + STREAM_LEASE_SECONDS
