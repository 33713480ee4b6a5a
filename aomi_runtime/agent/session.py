"""A live session: its state, its turns (one at a time, the rest queued), its event log, written through.

Plain asyncio, no Ray: the session actor is a thin adapter around this class.

Every change goes to the history backend before anyone is told of it: state is marked dirty, events are
appended to a pending list, and `_flush` writes all of it in one commit, then publishes the events. So an
acknowledged message is stored, and an event a subscriber has seen can always be replayed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .apps import App, compact_json, utf8_size
from .errors import AomiError, InvalidInput, LimitReached, SessionClosed
from .logs import fingerprint, log_failure
from .protocols import HistoryBackend
from .records import (
    DEFAULT_TITLE,
    INTERRUPTION,
    MAX_TITLE_CHARS,
    Commit,
    Event,
    Message,
    QueuedMessage,
    SessionRecord,
    Snapshot,
    StoredSession,
    ToolCall,
    inline_call,
    system_error,
    system_notice,
    utcnow,
)
from .titles import generate_title
from .turn import run_turn

log = logging.getLogger(__name__)

RECENT_EVENTS = 1024
EVENT_PAGE = 500
RETRY_WINDOW = 64  # how far back a retried chat request is looked for
STREAM_LEASE_SECONDS = 5.0  # an open stream not heard from for this long (beyond its wait) is counted gone
CUT_SHORT = (
    "The previous turn was cut short when its session stopped unexpectedly; "
    "send the message again if it still needs an answer."
)


RUNTIME_EVENTS = frozenset(
    {
        "processing_started",
        "processing_done",
        "message",
        "title_changed",
        "tool_update",
        "tool_complete",
        "system_notice",
    }
)


class LiveSession:
    """One conversation, live. Create it with `create` or `restore`; stop it with `close`."""

    def __init__(
        self, app: App, history: HistoryBackend, stored: StoredSession, on_turn: Callable[[float], None] | None = None
    ) -> None:
        self.app = app
        self.on_turn = on_turn  # told each finished turn's duration, in seconds
        self.record = stored.record
        self.messages: list[Message] = list(stored.messages)
        self.last_active = time.monotonic()
        self._waiting = 0  # callers of events_after waiting now without naming a stream
        self._streams: dict[str, float] = {}  # open event streams: id -> when its lease runs out
        self._history = history
        self._dirty_messages: set[int] = set()
        self._record_dirty = False
        self._pending: list[Event] = []
        self._recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._published = self.record.last_seq
        self._published_signal = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._turn: asyncio.Task[None] | None = None
        self._title: asyncio.Task[None] | None = None
        self._interrupted = False
        self._model_task: asyncio.Task[None] | None = None
        self._closed = False
        self._broken = False

    # --- lifecycle ------------------------------------------------------------------------------

    @classmethod
    async def create(
        cls, app: App, history: HistoryBackend, session_id: str, *, public_key: str | None = None
    ) -> LiveSession:
        """A new session, stored before it is returned. Raises `AppMismatch` if the id is another App's."""
        record = SessionRecord(session_id=session_id, app=app.name, public_key=public_key)
        session = cls(app, history, StoredSession(record=record))
        session._record_dirty = True
        await session._flush()
        return session

    @classmethod
    async def restore(cls, app: App, history: HistoryBackend, stored: StoredSession) -> LiveSession:
        """The reconstructor: a stored session made live, a turn left open closed, its queue resumed."""
        session = cls(app, history, stored)
        if session.record.is_processing or any(m.is_streaming for m in session.messages):
            session._finish_streaming()
            session.record.pending_system_events.append(system_error(CUT_SHORT))
            session.record.is_processing = False
            session._emit("processing_done", **session._turn_request(), error=CUT_SHORT)
            await session._flush()
        if session.record.queue:
            await session._start_turn(session.record.queue.pop(0))
        return session

    async def close(self) -> None:
        """Stop the running turn and title task, store what is left, and refuse further calls."""
        self._closed = True
        for task in (self._turn, self._title):
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError, SessionClosed):
                    await task
        if not self._broken:
            await self._flush(final=True)
        self._published_signal.set()

    @property
    def session_id(self) -> str:
        return self.record.session_id

    @property
    def is_processing(self) -> bool:
        return self.record.is_processing

    @property
    def subscribers(self) -> int:
        """Event streams open on this session (each holds a lease it renews on every wait), and anonymous waiters:
        a session being watched is not idle."""
        now = time.monotonic()
        for stream in [s for s, until in self._streams.items() if until < now]:
            del self._streams[stream]  # its replica went without closing it
        return len(self._streams) + self._waiting

    @property
    def is_busy(self) -> bool:
        """A turn or a title is being made, or a stream is watching: the session should not be evicted."""
        return self.is_processing or self.subscribers > 0 or (self._title is not None and not self._title.done())

    # --- what clients call ----------------------------------------------------------------------

    async def chat(
        self,
        text: str,
        user_state: dict[str, Any] | None = None,
        request_id: str | None = None,
        public_key: str | None = None,
    ) -> Snapshot:
        """Store the user's message, start its turn (or queue it behind the running one), return the snapshot.

        A `request_id` already stored (a retry of a request whose answer was lost) adds nothing again. A
        `public_key` binds a session that has none yet (a wallet connected after the first message).
        """
        self.check_open()
        if request_id is not None and self._has_request(request_id):
            return await self.snapshot(user_state)
        self.app.spec.limits.check_message(text)
        self._set_user_state(user_state)
        if public_key and self.record.public_key is None:
            self.record.public_key = public_key
            self._record_dirty = True
        queued = QueuedMessage(content=text, request_id=request_id)
        if self.is_processing:
            self.record.queue.append(queued)
            self._record_dirty = True
            await self._flush()
        else:
            await self._start_turn(queued)
        return await self.snapshot()

    async def snapshot(self, user_state: dict[str, Any] | None = None) -> Snapshot:
        """The whole session; system events are handed out once, so they are stored as taken."""
        self.check_open()
        self._set_user_state(user_state)
        events = self.record.pending_system_events
        if events:
            self.record.pending_system_events = []
            self._record_dirty = True
        # Always through the flush lock: a commit under way (a turn's end, say) lands before the snapshot shows it,
        # so a client never sees `is_processing: false` for a turn the database does not hold yet.
        await self._flush()
        queued = [
            Message(sender="user", content=q.content, timestamp=q.timestamp, queued=True, request_id=q.request_id)
            for q in self.record.queue
        ]
        return Snapshot(
            messages=[*self.messages, *queued],
            system_events=events,
            title=self.record.title,
            is_processing=self.is_processing,
            user_state=self.record.user_state,
            last_event_id=self._published,
        )

    async def interrupt(self) -> Snapshot:
        """Stop the running turn at once; idempotent. Messages queued behind it still get their turns."""
        self.check_open()
        if self.is_processing:
            # Wherever the turn is (starting, in the model or a tool, storing its end), it ends interrupted: the
            # model task is cancelled if it runs, and a turn not yet started skips the model.
            self._interrupted = True
            if self._model_task is not None:
                self._model_task.cancel()
        turn = self._turn
        if turn is not None and not turn.done():
            await asyncio.shield(turn)
        return await self.snapshot()

    async def post_system(self, message: str) -> Any:
        """Text becomes a `system_notice`; a JSON object is published as-is. The model sees either next turn."""
        self.check_open()
        self.app.spec.limits.check_message(message)  # stored and shown to the model like a user's message
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            utf8_size(compact_json(parsed), "The message")  # its escapes may decode to a lone surrogate
            type_ = parsed.get("type") if isinstance(parsed.get("type"), str) else "system"
            if type_ in RUNTIME_EVENTS:
                # Readers of the stream (the Python client among them) trust these to come from the runtime.
                raise InvalidInput(f"The event type {type_!r} is the runtime's own; post it under another type.")
            self._emit(type_, **{k: v for k, v in parsed.items() if k not in ("type", "session_id")})
            self.record.pending_system_events.append(inline_call(type_, parsed))
            self.record.model_notes.append(json.dumps(parsed, ensure_ascii=False))
            result: Any = parsed
        else:
            self._emit("system_notice", message=message)
            self.record.pending_system_events.append(system_notice(message))
            self.record.model_notes.append(message)
            result = message
        await self._flush()
        return result

    async def rename(self, title: str) -> None:
        """Set a title by hand; the automatic title never replaces it."""
        self.check_open()
        title = title.strip()
        utf8_size(title, "The title")
        if not title or len(title) > MAX_TITLE_CHARS:
            raise InvalidInput(f"A title is 1 to {MAX_TITLE_CHARS} characters, not only spaces.")
        self.record.title = title
        self.record.title_is_manual = True
        self._emit("title_changed", new_title=title)
        await self._flush()

    async def set_model(self, label_or_slug: str) -> str:
        """Choose the model for later turns, by label or slug; it is stored with the session. Returns the slug."""
        self.check_open()
        chosen = self.app.spec.model(label_or_slug)
        if chosen is None:
            offered = ", ".join(m.slug for m in self.app.spec.models)
            raise InvalidInput(f"Unknown model {label_or_slug!r}; this App offers: {offered}.")
        self.record.model = chosen.slug
        self._record_dirty = True
        await self._flush()
        return chosen.slug

    async def set_archived(self, archived: bool) -> None:
        self.check_open()
        self.record.is_archived = archived
        self._record_dirty = True
        await self._flush()

    def open_stream(self, stream: str, max_streams: int) -> int:
        """Count an event stream as open, if fewer than `max_streams` are; returns the seq published so far.

        Raises:
            LimitReached: `max_streams` streams are open on this session already.
        """
        self.check_open()
        if stream not in self._streams and self.subscribers - self._waiting >= max_streams:
            raise LimitReached(
                f"The session {self.session_id!r} already has {max_streams} open event streams, the most allowed; "
                "close one, or try again later."
            )
        self._streams[stream] = time.monotonic() + STREAM_LEASE_SECONDS
        return self._published

    def close_stream(self, stream: str) -> None:
        self._streams.pop(stream, None)

    async def events_after(self, after: int, timeout: float, stream: str | None = None) -> list[Event]:
        """Events with seq above `after`, oldest first: at once if there are any, else the first within `timeout`.

        A `stream` opened with `open_stream` renews its lease with each call, and is closed if the call is cancelled.
        """
        self.check_open()
        if stream is None:
            self._waiting += 1
        else:
            self._streams[stream] = time.monotonic() + timeout + STREAM_LEASE_SECONDS
        try:
            return await self._events_after(after, timeout)
        except asyncio.CancelledError:
            if stream is not None:
                self.close_stream(stream)  # its client went: the replica cancelled this wait
            raise
        finally:
            self.last_active = time.monotonic()
            if stream is None:
                self._waiting -= 1
            elif stream in self._streams:
                self._streams[stream] = self.last_active + STREAM_LEASE_SECONDS

    async def _events_after(self, after: int, timeout: float) -> list[Event]:
        if after > self._published:
            after = 0  # an id from before this session's id was deleted and used again: replay this one whole
        if self._published <= after:
            signal = self._published_signal
            with suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), timeout)
            self.check_open()
        if self._published <= after:
            return []
        if self._recent and self._recent[0].seq <= after + 1:
            return [e for e in self._recent if e.seq > after]
        return await self._history.events(self.app.name, self.session_id, after, EVENT_PAGE)

    async def last_events(self, count: int) -> list[Event]:
        self.check_open()
        if count <= len(self._recent) or len(self._recent) == self._published:
            return list(self._recent)[-count:] if count else []
        return await self._history.last_events(self.app.name, self.session_id, count)

    # --- the turn sink: what the turn engine calls ----------------------------------------------

    def append_text(self, text: str) -> None:
        last = self.messages[-1] if self.messages else None
        if last is None or last.sender != "agent" or not last.is_streaming:
            # announced when it ends, as every message is: `message` events carry finished messages only
            last = self._add_message(Message(id=len(self.messages), sender="agent", is_streaming=True), announce=False)
        last.content += text

    async def end_text(self) -> None:
        if self._finish_streaming():
            await self._flush()

    async def add_tool_result(self, call: ToolCall, topic: str, text: str) -> None:
        self._finish_streaming()
        self._add_message(Message(id=len(self.messages), sender="agent", tool_result=(topic, text), tool_call=call))
        self._add_message(Message(id=len(self.messages), sender="agent", is_streaming=True), announce=False)
        await self._flush()

    async def emit(self, type_: str, **fields: Any) -> None:
        self._emit(type_, **fields)
        await self._flush()

    # --- turns ----------------------------------------------------------------------------------

    async def _start_turn(self, queued: QueuedMessage) -> None:
        self.record.is_processing = True
        self._emit("processing_started", **({"request_id": queued.request_id} if queued.request_id else {}))
        self._add_message(
            Message(
                id=len(self.messages),
                sender="user",
                content=queued.content,
                timestamp=queued.timestamp,
                request_id=queued.request_id,
            )
        )
        self._add_message(Message(id=len(self.messages), sender="agent", is_streaming=True), announce=False)
        await self._flush()
        self.check_open()  # closed while storing: its next holder finishes the turn's bookkeeping
        self._turn = asyncio.create_task(self._run_turn(), name=f"turn:{self.session_id}")

    async def _run_turn(self) -> None:
        started = time.perf_counter()
        error: str | None = None
        notes, self.record.model_notes = self.record.model_notes, []
        # The model and tools run as a task of their own, so that an interrupt cancels them and not the
        # bookkeeping below; an interrupt that comes before they start means they never do.
        if not self._interrupted:
            self._model_task = asyncio.create_task(
                run_turn(
                    self.app,
                    self,
                    session_id=self.session_id,
                    history=self.messages[:],
                    model=self.record.model,
                    user_state=self.record.user_state,
                    notes=notes,
                )
            )
            try:
                await self._model_task
            except asyncio.CancelledError:
                if not self._interrupted or _cancelling():
                    raise  # closing: `close` stores what is left
            except AomiError as exc:
                error = str(exc)
            except Exception as exc:
                log_failure(log, f"turn of session {fingerprint(self.session_id)}", exc)
                error = "The turn failed because of an internal error; it was logged."
            finally:
                self._model_task = None
        interrupted, self._interrupted = self._interrupted, False
        if interrupted:
            self.record.pending_system_events.append(INTERRUPTION)
        if error is not None:
            self.record.pending_system_events.append(system_error(error))
        self._finish_streaming()
        self._maybe_make_title()
        outcome = {"error": error} if error else {"interrupted": True} if interrupted else {}
        self._emit("processing_done", **self._turn_request(), **outcome)
        if self.on_turn is not None:
            self.on_turn(time.perf_counter() - started)
        if self.record.queue and not self._closed:
            # The next queued message gets its turn as a task of its own, so an interrupt stops only this one.
            await self._start_turn(self.record.queue.pop(0))
        else:
            self.record.is_processing = False
            await self._flush()

    def _maybe_make_title(self) -> None:
        if self.record.title_is_manual or self.record.title != DEFAULT_TITLE:
            return
        if self._title is None or self._title.done():
            self._title = asyncio.create_task(self._make_title(), name=f"title:{self.session_id}")

    async def _make_title(self) -> None:
        try:
            title = await generate_title(self.app.provider(self.record.model), self.messages)
        except Exception as exc:  # a title is a nicety: a failing model must not break the session
            log_failure(log, f"title of session {fingerprint(self.session_id)}", exc, logging.WARNING)
            return
        if not title or self.record.title_is_manual or self._closed:
            return
        self.record.title = title
        await self.emit("title_changed", new_title=title)

    # --- state and the write path ---------------------------------------------------------------

    def check_open(self) -> None:
        if self._closed:
            raise SessionClosed(f"The session {self.session_id!r} is closing; look it up again.")
        self.last_active = time.monotonic()

    def _has_request(self, request_id: str) -> bool:
        recent_users = (m for m in reversed(self.messages[-RETRY_WINDOW:]) if m.sender == "user")
        return any(m.request_id == request_id for m in recent_users) or any(
            q.request_id == request_id for q in self.record.queue
        )

    def _set_user_state(self, user_state: dict[str, Any] | None) -> None:
        if user_state is not None and user_state != self.record.user_state:
            self.app.spec.limits.check_user_state(user_state)
            self.record.user_state = user_state
            self._record_dirty = True

    def _add_message(self, message: Message, *, announce: bool = True) -> Message:
        self.messages.append(message)
        assert message.id is not None
        self._dirty_messages.add(message.id)
        if announce:
            self._emit("message", message=message.model_dump(mode="json", exclude={"queued"}))
        return message

    def _finish_streaming(self) -> bool:
        """End every streaming agent message and announce it; return whether there was one."""
        finished = False
        for m in self.messages:
            if m.is_streaming:
                m.is_streaming = False
                assert m.id is not None
                self._dirty_messages.add(m.id)
                self._emit("message", message=m.model_dump(mode="json", exclude={"queued"}))
                finished = True
        return finished

    def _turn_request(self) -> dict[str, str]:
        # The running turn is the last user message's; its request id lets a client wait for its own turn.
        last = next((m for m in reversed(self.messages) if m.sender == "user"), None)
        return {"request_id": last.request_id} if last is not None and last.request_id else {}

    def _emit(self, type_: str, **fields: Any) -> None:
        self.record.last_seq += 1
        data = {"type": type_, "session_id": self.session_id, **fields}
        self._pending.append(Event(seq=self.record.last_seq, data=data))
        self._record_dirty = True

    async def _flush(self, *, final: bool = False) -> None:
        """Write everything changed in one commit, then publish its events. Concurrent calls coalesce.

        Once the session is closing only `close` writes (`final`): another actor may be loading it already.
        """
        async with self._flush_lock:
            if self._broken or (self._closed and not final):
                raise SessionClosed(f"The session {self.session_id!r} is closed; look it up again.")
            if not (self._record_dirty or self._dirty_messages or self._pending):
                return
            ids, events = sorted(self._dirty_messages), self._pending
            self._dirty_messages, self._pending, self._record_dirty = set(), [], False
            self.record.updated_at = utcnow()
            commit = Commit(record=self.record, messages=[self.messages[i] for i in ids], events=events)
            try:
                await self._history.commit(self.app.name, commit)
            except asyncio.CancelledError:
                # The commit may or may not have landed; writes are idempotent, so keep it for the next flush.
                self._dirty_messages.update(ids)
                self._pending[:0] = events
                self._record_dirty = True
                raise
            except Exception:
                # Memory now holds what the database does not: give it up, so that the next caller rebuilds the
                # session from the database, the source of truth. Nothing unstored was acknowledged.
                self._closed = self._broken = True
                self._published_signal.set()
                for task in (self._turn, self._title):
                    if task is not None and task is not asyncio.current_task():
                        task.cancel()
                raise
            if events:
                self._recent.extend(events)
                self._published = events[-1].seq
                signal, self._published_signal = self._published_signal, asyncio.Event()
                signal.set()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
