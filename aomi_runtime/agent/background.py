"""A session's background tool calls: each runs as a task of its own after the turn that made it, is stored as
running until it ends, and ends with a result the model is given at the next turn (an error if its session
stopped meanwhile: never a silent loss).

The model is given the result as a call of the tool and its result, after the call's first, queued result: a
tool result is what every provider reads in order and answers (a system message would be moved into an
Anthropic model's system prompt, leaving a follow-up turn to continue the model's own last message)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from .errors import SessionClosed
from .journal import Journal
from .records import BackgroundCall, Message, ToolCall
from .tools import Progress
from .tracing import record_background_call
from .turn import is_error, result_text, tool_event

log = logging.getLogger(__name__)

CUT_SHORT_RESULT = {"error": "The background call was cut short when its session stopped; run it again if needed."}


class BackgroundCalls:
    """The background calls of one session."""

    def __init__(
        self,
        journal: Journal,
        follow_up: Callable[[], Awaitable[None]],
        traceparent: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._journal = journal
        self._follow_up = follow_up  # starts a turn that answers what arrived
        self._traceparent = traceparent  # the running turn's parent span: its calls' runs are traced under it
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, call: ToolCall, topic: str, run: Callable[[Progress], Awaitable[Any]], starts_turn: bool) -> None:
        """Record the call as running (stored with the turn's next commit, which holds its queued result) and start
        it."""
        entry = BackgroundCall(call=call, topic=topic, starts_turn=starts_turn)
        self._journal.record.background.append(entry)
        self._journal.record_changed()
        traced = self._traceparent()
        self._tasks[call.id] = asyncio.create_task(self._run(entry, run, traced), name=f"background:{call.id}")

    async def end_cut_short(self) -> None:
        """After a restore: end each call its last process left running with an error result."""
        for entry in list(self._journal.record.background):
            await self._finish(entry, CUT_SHORT_RESULT, follow_up=False)

    def cancel(self) -> None:
        """Stop every running call where it is (the session is given up); a call not ended stays stored as running,
        so the next holder ends it with an error and the call never runs in two places."""
        for task in self._tasks.values():
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        """Stop every running call and wait for it. One not ended stays stored as running, so the next restore ends
        it with an error; one ending as the session closes is stored as ended, with its follow-up queued, by the
        session's final commit."""
        tasks = list(self._tasks.values())
        self.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, SessionClosed):
                await task

    async def _run(
        self, entry: BackgroundCall, run: Callable[[Progress], Awaitable[Any]], traceparent: str | None
    ) -> None:
        async def progress(update: Any) -> None:
            self._journal.event("tool_update", **tool_event(entry.call, update))
            await self._journal.flush()

        call, started = entry.call, time.time_ns()

        def trace(status: str) -> None:
            extra = {"call_id": call.call_id, "topic": entry.topic, "status": status}
            record_background_call(
                call.name, extra, started, traceparent=traceparent, session_id=self._journal.record.session_id
            )

        try:
            try:
                result = await run(progress)
            except asyncio.CancelledError:
                trace("error")  # cut short by the session closing
                raise  # the session is closing: the call stays stored as running
            except Exception as exc:  # the model sees a tool's failure as its result
                log.info("background tool %s failed: %s", entry.call.name, type(exc).__name__)
                result = {"error": f"{type(exc).__name__}: {exc}"}
            trace("error" if is_error(result) else "ok")
            await self._finish(entry, result, follow_up=entry.starts_turn)
        except SessionClosed:
            pass  # closed while storing its end: the session's final commit stores it (see `close`)
        finally:
            self._tasks.pop(entry.call.id, None)

    async def _finish(self, entry: BackgroundCall, result: Any, *, follow_up: bool) -> None:
        """Store the call's end: `tool_complete`, and its result as a message the model reads next turn, in one
        commit with the follow-up turn, if one is asked for."""
        journal, call = self._journal, entry.call
        text = result_text(result)
        journal.record.background.remove(entry)
        journal.record_changed()
        journal.event("tool_complete", **tool_event(call, result, ended=True))
        journal.add_message(
            Message(
                id=len(journal.messages),
                sender="system",
                content=f"The background call {call.id} of the {call.name} tool ended: {text}",
                tool_result=(entry.topic, text),
                # A call of its own (the model's call id with a suffix: each call has one result), so the model
                # reads the result where it arrived.
                tool_call=call.model_copy(update={"call_id": f"{call.call_id or call.id}_ended"}),
            )
        )
        if follow_up:
            await self._follow_up()  # stores the above with the follow-up
        else:
            await journal.flush()
