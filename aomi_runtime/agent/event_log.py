"""A session's event log as its readers see it: what was published, waiting for the next event, and reading events
back, the recent ones from memory and older ones from the history backend."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from itertools import islice

from .protocols import HistoryBackend
from .records import Event

RECENT_EVENTS = 1024
EVENT_PAGE = 500


class EventLog:
    """The published events of one session. An event is published only once the commit holding it has landed, so
    any event a reader has seen can be read again."""

    def __init__(self, history: HistoryBackend, app: str, session_id: str, published: int) -> None:
        self.published = published  # the seq of the newest event published
        self._history = history
        self._app = app
        self._session_id = session_id
        self._recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._signal = asyncio.Event()  # set, and replaced, when events are published

    def publish(self, events: list[Event]) -> None:
        """Show readers events just stored, and wake those waiting for them."""
        if events:
            self._recent.extend(events)
            self.published = events[-1].seq
            signal, self._signal = self._signal, asyncio.Event()
            signal.set()

    def wake(self) -> None:
        """Wake every reader waiting now, and let none wait from now on: the session is closing."""
        self._signal.set()

    async def read_after(
        self, after: int, timeout: float, check_open: Callable[[], None], numbered: int | None = None
    ) -> list[Event]:
        """Events with seq above `after`, oldest first: at once if there are any, else the first within `timeout`.

        `check_open` is called after a wait, so that a reader woken by the session closing learns it did. `numbered`:
        the seq of the newest event numbered (stored, or being stored), `published` if not given.
        """
        if after > max(self.published, numbered or 0):
            # An id from before this session's id was deleted and used again: replay this one whole. One above
            # `published` only is not: a page read from the store shows a commit's events before they are published.
            after = 0
        if self.published <= after:
            signal = self._signal
            with suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout)
            check_open()
        if self.published <= after:
            return []
        if self._recent and self._recent[0].seq <= after + 1:
            return [e for e in self._recent if e.seq > after]
        # Only what was published: a commit's events are stored before they are (see `Journal.flush`).
        return [
            e
            for e in await self._history.events(self._app, self._session_id, after, EVENT_PAGE)
            if e.seq <= self.published
        ]

    async def last(self, count: int) -> list[Event]:
        """The newest `count` events, oldest first."""
        if count <= len(self._recent) or len(self._recent) == self.published:
            return list(self._recent)[-count:] if count else []
        # Only what was published (a commit being acknowledged may be stored already: its events come after).
        return [
            e for e in await self._history.last_events(self._app, self._session_id, count) if e.seq <= self.published
        ]

    async def page(self, after: int, limit: int) -> list[Event]:
        """Up to `limit` published events with seq above `after`, oldest first: from memory where it holds them
        all, else from the history backend (only what was published, as `read_after`)."""
        if limit <= 0 or after >= self.published:
            return []
        if self._recent and self._recent[0].seq <= after + 1:
            start = after + 1 - self._recent[0].seq  # seq rises by one per event
            return list(islice(self._recent, start, start + limit))
        page = await self._history.events(self._app, self._session_id, after, limit)
        return [e for e in page if e.seq <= self.published]
