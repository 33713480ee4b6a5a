"""A session's turns: one runs at a time, the rest wait in its stored queue, and the running one can be
interrupted wherever it is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from .apps import App
from .errors import AomiError
from .journal import Journal
from .logs import fingerprint, log_failure
from .records import INTERRUPTION, Message, QueuedMessage, system_error
from .secrets import for_client
from .timings import TurnTimings
from .titles import AutoTitle
from .tracing import record_turn
from .turn import TurnSink, run_turn

log = logging.getLogger(__name__)

RETRY_WINDOW = 64  # how far back a retried chat request is looked for
MAX_WAITING_TRACES = 256  # traceparents of queued turns kept (in memory only: a restored queue's turns start traces)
FOLLOW_UP_CUT_SHORT = "The follow-up turn was cut short when its session stopped; it runs again."


def _turn_request(messages: Sequence[Message]) -> dict[str, str]:
    """The running turn's request id as event fields, if it has one."""
    # The running turn is the last user message's; its request id lets a client wait for its own turn.
    last = next((m for m in reversed(messages) if m.sender == "user"), None)
    return {"request_id": last.request_id} if last is not None and last.request_id else {}


class TurnQueue:
    """Starts, runs and ends the turns of one session, each step stored through the session's journal."""

    def __init__(
        self,
        app: App,
        journal: Journal,
        sink: TurnSink,
        title: AutoTitle,
        check_open: Callable[[], None],
        ended: Callable[[float], None],
    ) -> None:
        self.task: asyncio.Task[None] | None = None  # the running turn, its bookkeeping included
        self._app = app
        self._journal = journal
        self._sink = sink  # where the turn engine's output goes: the session's `TurnOutput`
        self._title = title
        self._check_open = check_open
        self._ended = ended  # told each finished turn's duration, in seconds
        self._interrupted = False
        self._dropping = 0  # how many queued messages an interrupt leaves unanswered, from the queue's front
        self._model_task: asyncio.Task[None] | None = None
        self._timings = TurnTimings()  # the running turn's, replaced as each turn starts
        self._traceparent: str | None = None  # the running turn's parent span, in the process that started it
        self._waiting_traces: dict[str, str] = {}  # by request id: the traceparents of queued turns

    async def resume(self, *, cut_short: str) -> None:
        """After the session was restored: end a turn its last process left open, telling the user `cut_short`,
        and start the next queued message's turn."""
        journal, record = self._journal, self._journal.record
        if record.is_processing or any(m.is_streaming for m in journal.messages):
            journal.finish_streaming()
            if record.follow_up_running:
                # No user message to send again: the follow-up runs again, so what it answers gets its answer.
                record.queue.insert(0, QueuedMessage(content="", follow_up=True))
                journal.event("processing_done", error=FOLLOW_UP_CUT_SHORT)
            else:
                record.pending_system_events.append(system_error(cut_short))
                journal.event("processing_done", **_turn_request(journal.messages), error=cut_short)
            record.is_processing = record.follow_up_running = False
            await journal.flush()
        if record.queue:
            await self._start(record.queue.pop(0))

    def has_request(self, request_id: str) -> bool:
        """Whether a recent user message, or a queued one, came with `request_id`."""
        recent_users = (m for m in reversed(self._journal.messages[-RETRY_WINDOW:]) if m.sender == "user")
        return any(m.request_id == request_id for m in recent_users) or any(
            q.request_id == request_id for q in self._journal.record.queue
        )

    async def submit(self, queued: QueuedMessage, traceparent: str | None = None) -> None:
        """Start `queued`'s turn, or queue it behind the running one. Its spans are children of `traceparent`'s
        span (a W3C `traceparent`: the HTTP request's), if given."""
        if self._journal.record.is_processing:
            if traceparent and queued.request_id:
                self._waiting_traces[queued.request_id] = traceparent
                if len(self._waiting_traces) > MAX_WAITING_TRACES:
                    del self._waiting_traces[next(iter(self._waiting_traces))]
            self._journal.record.queue.append(queued)
            self._journal.record_changed()
            await self._journal.flush()
        else:
            await self._start(queued, traceparent)

    async def follow_up(self) -> None:
        """Start a turn that answers what arrived since the last one (a wallet's outcome, a background result),
        or queue it; one waiting follow-up answers everything that arrives before it starts. Stores what the
        session changed with it."""
        if any(q.follow_up for q in self._journal.record.queue):
            await self._journal.flush()
        else:
            await self.submit(QueuedMessage(content="", follow_up=True))

    async def _start(self, queued: QueuedMessage, traceparent: str | None = None) -> None:
        """Store `queued` as the user's message, with the empty agent message that will hold the answer, and
        start its turn."""
        journal, record = self._journal, self._journal.record
        # The turn starts here, its `processing_started` commit its first span; the journal times the turn's commits.
        self._timings = journal.timings = TurnTimings()
        waiting = self._waiting_traces.pop(queued.request_id, None) if queued.request_id else None
        self._traceparent = traceparent or waiting
        record.is_processing = True
        record.follow_up_running = queued.follow_up
        if not queued.follow_up:
            # This turn's history holds every outcome and result stored so far: a follow-up queued for them
            # would answer nothing new (and ask the model to go on from its own answer).
            record.queue[:] = [q for q in record.queue if not q.follow_up]
        journal.event("processing_started", **({"request_id": queued.request_id} if queued.request_id else {}))
        if not queued.follow_up:
            self._add_user_message(queued)
        journal.add_message(Message(id=len(journal.messages), sender="agent", is_streaming=True), announce=False)
        await journal.flush(turn=True)
        self._check_open()  # closed while storing: its next holder finishes the turn's bookkeeping
        self.task = asyncio.create_task(self._run(), name=f"turn:{journal.record.session_id}")

    async def interrupt(self) -> None:
        """Stop the running turn at once and wait for its end to be stored; idempotent. The messages queued
        behind it now get no turn: they are stored as unanswered (the user stopped what they saw as the turn)."""
        if self._journal.record.is_processing:
            # Wherever the turn is (starting, in the model or a tool, storing its end), it ends interrupted: the
            # model task is cancelled if it runs, and a turn not yet started skips the model.
            self._interrupted = True
            self._dropping = max(self._dropping, len(self._journal.record.queue))
            if self._model_task is not None:
                self._model_task.cancel()
        turn = self.task
        if turn is not None and not turn.done():
            await asyncio.shield(turn)

    async def _answer(self, history: list[Message], notes: list[str]) -> None:
        record = self._journal.record
        async with for_client(self._app, record) as app:  # the client's secrets and own provider key, if any
            await run_turn(
                app,
                self._sink,
                session_id=record.session_id,
                history=history,
                model=record.model,
                user_state=record.user_state,
                notes=notes,
                timings=self._timings,
            )

    def _interrupt_asked(self) -> bool:
        # Read through a call: `interrupt` sets the flag while `_run` awaits, which a narrowed read would not see.
        return self._interrupted

    async def _run(self) -> None:
        journal, record = self._journal, self._journal.record
        error: str | None = None
        notes, record.model_notes = record.model_notes, []
        # The model and tools run as a task of their own, so that an interrupt cancels them and not the
        # bookkeeping below; an interrupt that comes before they start means they never do.
        if not self._interrupted:
            self._model_task = asyncio.create_task(self._answer(journal.messages[:], notes))
            try:
                await self._model_task
            except asyncio.CancelledError:
                if not self._interrupt_asked() or _cancelling():
                    raise  # closing: `close` stores what is left
            except AomiError as exc:
                error = str(exc)
            except Exception as exc:
                log_failure(log, f"turn of session {fingerprint(record.session_id)}", exc)
                error = "The turn failed because of an internal error; it was logged."
            finally:
                self._model_task = None
        interrupted, self._interrupted = self._interrupted, False
        if interrupted:
            record.pending_system_events.append(INTERRUPTION)
        if error is not None:
            record.pending_system_events.append(system_error(error))
        journal.finish_streaming()
        self._title.start()
        outcome = {"error": error} if error else {"interrupted": True} if interrupted else {}
        # Up to here: the commit that stores `processing_done` cannot be one of its own spans.
        journal.timings, timings = None, self._timings.as_json()
        request = {} if record.follow_up_running else _turn_request(journal.messages)
        journal.event("processing_done", **request, **outcome, timings=timings)
        if interrupted:
            self._leave_unanswered()
        self._ended(timings["ms"] / 1000)
        record_turn(
            self._timings,
            traceparent=self._traceparent,
            session_id=record.session_id,
            app=self._app.name,
            request_id=request.get("request_id"),
            follow_up=record.follow_up_running,
            error=error,
            interrupted=interrupted,
        )
        if record.queue and not journal.closed:
            # The next queued message gets its turn as a task of its own, so an interrupt stops only this one.
            await self._start(record.queue.pop(0))
        else:
            record.is_processing = record.follow_up_running = False
            await journal.flush()

    def _add_user_message(self, queued: QueuedMessage, *, unanswered: bool = False) -> None:
        journal = self._journal
        journal.add_message(
            Message(
                id=len(journal.messages),
                sender="user",
                content=queued.content,
                timestamp=queued.timestamp,
                request_id=queued.request_id,
                unanswered=unanswered,
            )
        )

    def _leave_unanswered(self) -> None:
        """Store the messages queued when the user interrupted as unanswered; each one's wait ends too."""
        journal, queue = self._journal, self._journal.record.queue
        dropped, queue[: self._dropping] = queue[: self._dropping], []
        self._dropping = 0
        for q in dropped:
            if q.request_id:
                self._waiting_traces.pop(q.request_id, None)
            if q.follow_up:
                continue  # what it would have answered stays stored for the next turn
            self._add_user_message(q, unanswered=True)
            journal.event("processing_done", **({"request_id": q.request_id} if q.request_id else {}), unanswered=True)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
