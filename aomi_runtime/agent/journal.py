"""A session's write path: its state, what changed in it since the last commit, and the one commit that stores
that and then publishes its events.

Every change goes to the history backend before anyone is told of it: state is marked dirty, events are numbered
and kept pending, and `flush` writes all of it in one commit, then publishes the events. So an acknowledged
message is stored, and an event a subscriber has seen can always be replayed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import SessionClosed
from .event_log import EventLog
from .protocols import HistoryBackend
from .records import Commit, Event, Message, StoredSession, ToolCall, utcnow
from .timings import TurnTimings
from .wallet import staged_state


class Journal:
    """The record and messages of one live session, the changes to them not stored yet, and `flush`."""

    def __init__(
        self, history: HistoryBackend, app: str, stored: StoredSession, log: EventLog, on_broken: Callable[[], None]
    ) -> None:
        self.record = stored.record
        self.messages: list[Message] = list(stored.messages)
        self.closed = False  # the session is closing: only its final flush writes
        self.broken = False  # a commit failed: memory holds what the database may not
        self._history = history
        self._app = app
        self._log = log
        self._on_broken = on_broken  # told once a commit failed, to stop what still runs
        # Called after each commit, and what it returns awaited before the commit's events are published: what
        # holds copies of the session drops them (None: nothing holds one).
        self.on_commit: Callable[[], Awaitable[None] | None] | None = None
        self.timings: TurnTimings | None = None  # the running turn's: its own commits are spans of it
        self._dirty_messages: set[int] = set()
        self._record_dirty = False
        self._pending: list[Event] = []
        self._commits = 0  # made so far, and what the last one stored: a flush that waited for one is timed as it
        self._last_commit = (0, 0)  # its messages and events
        self._lock = asyncio.Lock()

    def record_changed(self) -> None:
        self._record_dirty = True

    def set_user_state(self, user_state: dict[str, Any] | None) -> None:
        """Keep the user_state a client sent, if any, in place of the stored one; the wallet requests the runtime
        staged in it (`pending_txs`, `pending_eip712s`) are the runtime's, whatever the client sent."""
        staged = staged_state(self.record.user_state if user_state is None else user_state, self.record.wallet_requests)
        if staged != self.record.user_state:
            self.record.user_state = staged
            self._record_dirty = True

    def event(self, type_: str, **fields: Any) -> None:
        """Number an event and keep it for the next commit, which publishes it."""
        self.record.last_seq += 1
        data = {"type": type_, "session_id": self.record.session_id, **fields}
        self._pending.append(Event(seq=self.record.last_seq, data=data))
        self._record_dirty = True

    def add_message(self, message: Message, *, announce: bool = True) -> Message:
        self.messages.append(message)
        assert message.id is not None
        self._dirty_messages.add(message.id)
        if announce:
            self.event("message", message=message.model_dump(mode="json", exclude={"queued"}))
        return message

    def append_text(self, text: str) -> None:
        """Add text to the newest streaming agent message, starting one if there is none."""
        last = self.messages[-1] if self.messages else None
        if last is None or last.sender != "agent" or not last.is_streaming:
            # announced when it ends, as every message is: `message` events carry finished messages only
            last = self.add_message(Message(id=len(self.messages), sender="agent", is_streaming=True), announce=False)
        last.content += text

    def add_tool_result(self, call: ToolCall, topic: str, text: str) -> None:
        """End the streaming agent message, add a finished tool call as its own, and start the next one. A call
        whose message is stored already (a wallet request stores it with the request) gets its result replaced."""
        if self._tool_message(call.id) is not None:
            self.set_tool_result(call.id, text)
            return
        self.finish_streaming()
        self.add_message(Message(id=len(self.messages), sender="agent", tool_result=(topic, text), tool_call=call))
        self.add_message(Message(id=len(self.messages), sender="agent", is_streaming=True), announce=False)

    def set_tool_result(self, call_id: str, text: str) -> None:
        """Replace the result of the tool call `call_id` (a wallet request's pending result by its outcome)."""
        m = self._tool_message(call_id)
        if m is None or m.tool_result is None or m.tool_result[1] == text:
            return
        m.tool_result = (m.tool_result[0], text)
        assert m.id is not None
        self._dirty_messages.add(m.id)
        self.event("message", message=m.model_dump(mode="json", exclude={"queued"}))

    def _tool_message(self, call_id: str) -> Message | None:
        # The first: a background call's final result comes later, in a message that names the same call.
        return next((m for m in self.messages if m.tool_call is not None and m.tool_call.id == call_id), None)

    def finish_streaming(self) -> bool:
        """End every streaming agent message and announce it; return whether there was one."""
        finished = False
        for m in self.messages:
            if m.is_streaming:
                m.is_streaming = False
                assert m.id is not None
                self._dirty_messages.add(m.id)
                self.event("message", message=m.model_dump(mode="json", exclude={"queued"}))
                finished = True
        return finished

    async def flush(self, *, final: bool = False, turn: bool = False) -> None:
        """Write everything changed in one commit, then publish its events. Concurrent calls coalesce.

        Once the session is closing only `close` writes (`final`): another actor may be loading it already. A flush
        the running turn makes (`turn`) is a span of its timings, from the call (waiting for a commit under way
        included) to the commit's events published (the wait for replicas to drop their copies included).
        """
        timings, started, seen = (self.timings, time.perf_counter(), self._commits) if turn else (None, 0.0, 0)
        async with self._lock:
            if self.broken or (self.closed and not final):
                raise SessionClosed(f"The session {self.record.session_id!r} is closed; look it up again.")
            if not (self._record_dirty or self._dirty_messages or self._pending):
                if timings is not None and self._commits > seen:  # stored by the commit it waited for
                    stored_messages, stored_events = self._last_commit
                    timings.record("commit", "commit", started, messages=stored_messages, events=stored_events)
                return
            ids, events = sorted(self._dirty_messages), self._pending
            self._dirty_messages, self._pending, self._record_dirty = set(), [], False
            self.record.updated_at = utcnow()
            commit = Commit(record=self.record, messages=[self.messages[i] for i in ids], events=events)
            try:
                await self._history.commit(self._app, commit)
            except asyncio.CancelledError:
                # The commit may or may not have landed; writes are idempotent, so keep it for the next flush.
                self._dirty_messages.update(ids)
                self._pending[:0] = events
                self._record_dirty = True
                raise
            except Exception:
                # Memory now holds what the database does not: give it up, so that the next caller rebuilds the
                # session from the database, the source of truth. Nothing unstored was acknowledged.
                self.closed = self.broken = True
                self._log.wake()
                self._on_broken()
                raise
            try:
                dropped = self.on_commit() if self.on_commit is not None else None
                if dropped is not None:
                    told = asyncio.ensure_future(dropped)
                    try:
                        await asyncio.shield(told)
                    except asyncio.CancelledError:
                        await told  # bounded (a lease): the events go out after it, cancelled or not
                        raise
            finally:
                self._log.publish(events)
                self._commits += 1
                self._last_commit = (len(ids), len(events))
                if timings is not None:
                    timings.record("commit", "commit", started, messages=len(ids), events=len(events))
