"""A live session: what its clients call, in front of its parts: the journal that writes its state through, the
event log readers follow, the streams that watch it, its turns and its automatic title.

Plain asyncio, no Ray: the session actor is a thin adapter around this class. Limits on what clients send (the size
of a message or of user_state) are checked at the edge, before a session is found or made; a session trusts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from .apps import App
from .background import BackgroundCalls
from .errors import InvalidInput, SessionClosed
from .event_log import EventLog
from .journal import Journal
from .protocols import HistoryBackend
from .records import Event, Message, QueuedMessage, SessionRecord, Snapshot, StoredSession, SystemEvent
from .streams import Streams
from .system_events import SystemEvents
from .titles import AutoTitle, manual_title
from .turn_output import TurnOutput
from .turn_queue import TurnQueue
from .wallet import WalletDesk

CUT_SHORT = (
    "The previous turn was cut short when its session stopped unexpectedly; "
    "send the message again if it still needs an answer."
)


class LiveSession:
    """One conversation, live. Create it with `create` or `restore`; stop it with `close`."""

    def __init__(
        self, app: App, history: HistoryBackend, stored: StoredSession, on_turn: Callable[[float], None] | None = None
    ) -> None:
        self.app = app
        self.on_turn = on_turn or (lambda _seconds: None)  # told each finished turn's duration, in seconds
        self.last_active = time.monotonic()
        self._log = EventLog(history, app.name, stored.record.session_id, stored.record.last_seq)
        self._journal = Journal(history, app.name, stored, self._log, self._stop_tasks)
        self.record = self._journal.record  # the journal's own, changed in place and never replaced
        self.messages = self._journal.messages
        self._streams = Streams()
        self._title = AutoTitle(app, self._journal)
        self._wallet = WalletDesk(self._journal)
        self._background = BackgroundCalls(
            self._journal, lambda: self._turns.follow_up(), lambda: self._turns.traceparent
        )
        output = TurnOutput(self._journal, self._wallet, self._background)
        self._turns = TurnQueue(app, self._journal, output, self._title, self.check_open, lambda s: self.on_turn(s))
        self._system = SystemEvents(self._journal, self._wallet, self._turns.follow_up)

    # --- lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def create(
        cls, app: App, history: HistoryBackend, session_id: str, *, public_key: str | None = None
    ) -> LiveSession:
        """A new session, stored before it is returned. Raises `AppMismatch` if the id is another App's."""
        record = SessionRecord(session_id=session_id, app=app.name, public_key=public_key)
        session = cls(app, history, StoredSession(record=record))
        session._journal.record_changed()
        await session._journal.flush()
        return session

    @classmethod
    async def restore(cls, app: App, history: HistoryBackend, stored: StoredSession) -> LiveSession:
        """The reconstructor: a stored session made live, a turn left open closed, its queue resumed."""
        session = cls(app, history, stored)
        await session._background.end_cut_short()
        await session._turns.resume(cut_short=CUT_SHORT)
        return session

    async def close(self) -> None:
        """Stop the running turn and title task, store what is left, and refuse further calls."""
        self._journal.closed = True
        await self._background.close()
        for task in (self._turns.task, self._title.task):
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError, SessionClosed):
                    await task
        if not self._journal.broken:
            await self._journal.flush(final=True)
        self._log.wake()

    @property
    def session_id(self) -> str:
        return self.record.session_id

    @property
    def is_processing(self) -> bool:
        return self.record.is_processing

    @property
    def subscribers(self) -> int:
        """Event streams open on this session (each holds a lease renewed on every wait), and anonymous waiters."""
        return self._streams.count

    @property
    def is_busy(self) -> bool:
        """Something runs (a turn, a background call, the title) or a stream watches: not to be evicted."""
        return self._running or self.subscribers > 0

    @property
    def is_running(self) -> bool:
        """A turn, a background call or the title runs: what a session of an old version finishes before it moves."""
        return self._running

    @property
    def at_rest(self) -> bool:
        """Nothing runs or waits that changes the session without a call, and a read hands out no system event:
        a copy of its snapshot (an ingress replica's) stays true until a call comes."""
        return not (self._running or self.record.queue or self.record.pending_system_events or self._journal.closed)

    @property
    def _running(self) -> bool:
        return self.is_processing or self._title.is_running or self._background.running > 0

    def on_commit(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Call `callback` after each commit, and await what it returns before the commit's events are published
        (and its call answered)."""
        self._journal.on_commit = callback

    # --- what clients call ----------------------------------------------------------------------

    async def chat(
        self,
        text: str,
        user_state: dict[str, Any] | None = None,
        request_id: str | None = None,
        public_key: str | None = None,
        client_id: str | None = None,
        traceparent: str | None = None,
    ) -> Snapshot:
        """Store the user's message, start its turn (or queue it behind the running one), return the snapshot.

        A `request_id` already stored (a retry of a request whose answer was lost) adds nothing again. A
        `public_key` or `client_id` is bound to the session (`bind`). The turn's spans are children of the span a
        W3C `traceparent` names (the HTTP request's, in the ingress replica), if given.
        """
        self.check_open()
        self.bind(public_key, client_id)
        if request_id is not None and self._turns.has_request(request_id):
            return await self.snapshot(user_state)
        self._journal.set_user_state(user_state)
        await self._turns.submit(QueuedMessage(content=text, request_id=request_id), traceparent)
        return await self.snapshot()

    def bind(self, public_key: str | None = None, client_id: str | None = None, *, rebind: bool = True) -> None:
        """Make the wallet (`public_key`) and the client a request names the session's, as Aomi rebinds them on
        every request: the session is listed under the wallet connected last, and its turns use that client's
        secrets and provider keys. Stored with the next commit.

        `rebind=False`, for a request that took no key (state): a session bound already keeps its own, so its id
        alone cannot move its turns (follow-ups too) onto another client's secrets and provider keys."""
        for name, value in (("public_key", public_key), ("client_id", client_id)):
            bound = getattr(self.record, name)
            if value and bound != value and (rebind or not bound):
                setattr(self.record, name, value)
                self._journal.record_changed()

    async def snapshot(
        self, user_state: dict[str, Any] | None = None, client_id: str | None = None, *, peek: bool = False
    ) -> Snapshot:
        """The whole session; system events are handed out once, so they are stored as taken. A `peek` (an onlooker's
        read, the console's) hands out none: its `system_events` is empty, and they stay for the session's client."""
        self.check_open()
        self.bind(client_id=client_id, rebind=False)
        self._journal.set_user_state(user_state)
        events: list[SystemEvent] = [] if peek else self._system.take()
        # Always through the flush lock: a commit under way (a turn's end, say) lands before the snapshot shows it,
        # so a client never sees `is_processing: false` for a turn the database does not hold yet.
        try:
            await self._journal.flush()
        except SessionClosed:
            # Closed while waiting (released): the read is retried where the session loads next, so the events it
            # took go back, for the release's final commit to store them still to be handed out.
            self._system.give_back(events)
            raise
        queued = [
            Message(sender="user", content=q.content, timestamp=q.timestamp, queued=True, request_id=q.request_id)
            for q in self.record.queue
            if not q.follow_up
        ]
        return Snapshot(
            messages=[*self.messages, *queued],
            system_events=events,
            title=self.record.title,
            is_processing=self.is_processing,
            user_state=self.record.user_state,
            last_event_id=self._log.published,
        )

    async def interrupt(self) -> Snapshot:
        """Stop the running turn at once; idempotent. Messages queued behind it get no turn: they stay in the
        history, marked `unanswered`."""
        self.check_open()
        await self._turns.interrupt()
        return await self.snapshot()

    async def post_system(self, message: str, traceparent: str | None = None) -> Message:
        """A notice or a JSON event posted to `/api/system`, a wallet's outcome among them (system_events.py)."""
        self.check_open()
        return await self._system.post(message, traceparent)

    async def rename(self, title: str) -> None:
        """Set a title by hand; the automatic title never replaces it."""
        self.check_open()
        self.record.title = title = manual_title(title)
        self.record.title_is_manual = True
        self._journal.event("title_changed", new_title=title)
        await self._journal.flush()

    async def set_model(self, label_or_slug: str, client_id: str | None = None) -> str:
        """Choose the model for later turns, by label or slug; it is stored with the session. Returns the slug."""
        self.check_open()
        self.bind(client_id=client_id)
        chosen = self.app.spec.model(label_or_slug)
        if chosen is None:
            offered = ", ".join(m.slug for m in self.app.spec.models)
            raise InvalidInput(f"Unknown model {label_or_slug!r}; this App offers: {offered}.")
        self.record.model = chosen.slug
        self._journal.record_changed()
        await self._journal.flush()
        return chosen.slug

    async def set_archived(self, archived: bool) -> None:
        self.check_open()
        self.record.is_archived = archived
        self._journal.record_changed()
        await self._journal.flush()

    def open_stream(self, stream: str, max_streams: int) -> int:
        """Count an event stream as open, if fewer than `max_streams` are; returns the seq published so far.

        Raises:
            LimitReached: `max_streams` streams are open on this session already.
        """
        self.check_open()
        self._streams.open(stream, max_streams, self.session_id)
        return self._log.published

    def close_stream(self, stream: str) -> None:
        self._streams.close(stream)

    async def events_after(self, after: int, timeout: float, stream: str | None = None) -> list[Event]:
        """Events with seq above `after`, oldest first: at once if there are any, else the first within `timeout`.

        A `stream` opened with `open_stream` renews its lease with each call, and is closed if the call is cancelled.
        """
        self.check_open()
        with self._streams.watching(stream, timeout):
            try:
                return await self._log.read_after(after, timeout, self.check_open, self.record.last_seq)
            finally:
                self.last_active = time.monotonic()

    async def last_events(self, count: int) -> list[Event]:
        self.check_open()
        return await self._log.last(count)

    async def events_page(self, after: int, limit: int) -> list[Event]:
        self.check_open()
        return await self._log.page(after, limit)

    async def messages_page(self, before: int | None, limit: int) -> list[Message]:
        """The newest `limit` messages with an id below `before`, in order, as a snapshot shows them (a commit under
        way lands first). A message's id is its place in the list: it is numbered so as it is added."""
        self.check_open()
        await self._journal.flush()
        end = len(self.messages) if before is None else max(0, min(before, len(self.messages)))
        return self.messages[max(0, end - limit) : end]

    def check_open(self) -> None:
        if self._journal.closed:
            raise SessionClosed(f"The session {self.session_id!r} is closing; look it up again.")
        self.last_active = time.monotonic()

    # --- helpers ----------------------------------------------------------------------------------

    def _stop_tasks(self) -> None:
        """A commit failed and the session is given up: its turn, title and background calls stop where they are
        (its next holder ends a call left running with an error: it must not run on here too)."""
        for task in (self._turns.task, self._title.task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._background.cancel()
