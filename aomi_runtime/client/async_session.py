"""One session of the async client: send a message and wait for its turn, follow its events live (resuming
across dropped connections), read and manage it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, TypedDict

import httpx
from httpx_sse import aconnect_sse

from ..agent.errors import ServerError, SessionNotFound
from ..agent.records import Event, Message, SessionInfo, Snapshot, SystemEvent, new_request_id
from .answers import error_of_answer, retried
from .frames import messages_frame
from .progress import TurnProgress, progress_for
from .reply import Reply, ended_by_interrupt, ends_turn, turn_finished

if TYPE_CHECKING:
    import pandas

    from .async_client import AsyncClient


class SendOptions(TypedDict, total=False):
    """`AsyncSession.send`'s keyword arguments, which the sync `Session.send` takes and hands on as they are."""

    user_state: dict[str, Any] | None
    wait: bool
    timeout: float | None
    progress: bool | None
    request_id: str | None


RECONNECTS = 10  # a stream reconnects this many times in a row before it gives up
KEEPALIVE_GRACE = 60.0  # the server sends a comment at least every 15 s: silence this long means a dead link
ATTEMPTS = 3  # of a call that is safe to repeat, when the connection fails
STATE_CHECK_SECONDS = 5.0  # a wait for a turn looks at the session this often when no event comes
PAGE_SIZE = 100  # messages or events in one page (the runtime's default; at most 1,000)


class AsyncSession:
    """One session of the client's App. `last_event_id` is the last event this object saw: `events` resumes
    after it."""

    def __init__(self, client: AsyncClient, session_id: str, title: str | None = None) -> None:
        self.client = client
        self.id = session_id
        self.title = title
        self.last_event_id = 0

    def __repr__(self) -> str:
        return f"<AsyncSession {self.id} {self.title!r}>"

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        return await self.client.request(method, path, session_id=self.id, **options)

    async def send(
        self,
        message: str,
        *,
        user_state: dict[str, Any] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: bool | None = None,
        request_id: str | None = None,
    ) -> Reply:
        """Send a message; with `wait`, return once its turn is over (a message sent during another turn waits
        for its own), showing tool progress where output is interactive.

        The message carries a request id (made here unless given): a send whose connection failed is repeated
        with it, and the runtime adds the message once.

        Raises:
            TimeoutError: the turn took longer than `timeout` seconds (it goes on in the runtime).
            SessionNotFound: the session was deleted while its turn was awaited.
        """
        request_id = request_id or new_request_id()
        started = time.monotonic()
        params = {
            "message": message,
            "app": self.client.app,
            "public_key": self.client.public_key,
            "client_id": self.client.client_id,
            "user_state": None if user_state is None else json.dumps(user_state),
            "request_id": request_id,
        }
        # A long message goes in the body: a request line has a size limit of its own.
        body = {"message": params.pop("message")} if len(message) > 1024 else None
        answer = await self._call("POST", "/api/chat", params=params, json=body, attempts=ATTEMPTS)
        snapshot = Snapshot.model_validate(answer)
        handed_out = list(snapshot.system_events)
        events: list[Event] = []
        if wait and not turn_finished(snapshot, request_id):
            shown = progress_for(self.client.progress if progress is None else progress)
            outcome = "stopped"
            try:
                async with asyncio.timeout(timeout):
                    outcome = await self._follow_turn(
                        request_id, snapshot.last_event_id or 0, events, handed_out, shown
                    )
            except TimeoutError:
                outcome = "still running (timed out waiting)"
                raise
            finally:
                shown.finish(outcome)
            snapshot = await self.state(attempts=ATTEMPTS)
            handed_out += snapshot.system_events
        return Reply(
            request_id,
            snapshot.model_copy(update={"system_events": handed_out}),
            tuple(events),
            time.monotonic() - started,
        )

    async def _follow_turn(
        self, request_id: str, after: int, seen: list[Event], handed_out: list[SystemEvent], shown: TurnProgress
    ) -> str:
        """Follow the stream until the turn's `processing_done`; return how it ended."""

        async def until_done() -> str:
            async for event in self.events(after=after):
                seen.append(event)
                shown.update(event)
                if ends_turn(event, request_id):
                    data = event.data
                    if "error" in data:
                        return f"error: {data['error']}"
                    return "interrupted" if ended_by_interrupt(event) else "done"
            raise AssertionError("an event stream does not end")  # pragma: no cover

        follow = asyncio.create_task(until_done())
        try:
            while True:
                done, _ = await asyncio.wait({follow}, timeout=STATE_CHECK_SECONDS)
                if done:
                    return follow.result()
                # Nothing for a while: check that the turn waited for can still end (the session may be gone).
                snapshot = await self.state()
                handed_out += snapshot.system_events
                if not any(m.request_id == request_id for m in snapshot.messages):
                    raise SessionNotFound(f"The session {self.id!r} was deleted while its turn was awaited.")
                if turn_finished(snapshot, request_id):
                    return "done"
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

    async def events(self, *, after: int | None = None) -> AsyncGenerator[Event, None]:
        """The session's events, live, in order, each once: first the stored ones after `after` (default: the
        last this object saw), then each as it happens. A dropped connection, or a runtime restarting, is
        resumed where it broke; after `RECONNECTS` failures in a row the last error is raised."""
        after = self.last_event_id if after is None else after
        failures = 0
        timeout = httpx.Timeout(self.client._http.timeout.connect, read=KEEPALIVE_GRACE)
        while True:
            connected = time.monotonic()
            error: Exception = ServerError("The event stream ended; the runtime may be stopping.", 503)
            try:
                headers = {"X-Session-Id": self.id, "Last-Event-ID": str(after)}
                async with aconnect_sse(
                    self.client._http, "GET", "/api/updates", headers=headers, timeout=timeout
                ) as source:
                    response = source.response
                    if response.is_error:
                        await response.aread()
                        error = error_of_answer(response)
                        if not retried(response):
                            raise error
                    else:
                        async for sse in source.aiter_sse():
                            if not sse.id or int(sse.id) <= after:
                                continue
                            event = Event(seq=int(sse.id), data=json.loads(sse.data))
                            after = event.seq
                            self.last_event_id = max(self.last_event_id, after)
                            failures = 0
                            yield event
            except httpx.TransportError as exc:
                error = exc
            if time.monotonic() - connected > KEEPALIVE_GRACE:
                failures = 0  # it was up a good while: this is a new break, not the same one again
            failures += 1
            if failures > RECONNECTS:
                raise error
            await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def state(self, user_state: dict[str, Any] | None = None, *, attempts: int = 1) -> Snapshot:
        """The whole session now (system events not yet handed out are handed out here)."""
        params = {"user_state": None if user_state is None else json.dumps(user_state)}
        return Snapshot.model_validate(await self._call("GET", "/api/state", params=params, attempts=attempts))

    async def messages(self) -> list[Message]:
        return (await self.state()).messages

    async def message_pages(self, page_size: int = PAGE_SIZE) -> AsyncGenerator[list[Message], None]:
        """The session's messages a page of `page_size` at a time, newest page first, each page in message order
        (`GET /api/sessions/{id}/messages`): a long session read without all of it crossing at once. Messages
        added meanwhile come after the first page, never into a later one; stop when you have read enough."""
        before: int | None = None
        while True:
            params = {"limit": page_size, "before": before}
            page = await self.client.request(
                "GET", f"/api/sessions/{self.id}/messages", params=params, attempts=ATTEMPTS
            )
            messages = [Message.model_validate(m) for m in page["messages"]]
            if messages:
                yield messages
            before = page["before"]
            if before is None:
                return

    async def event_pages(self, *, after: int = 0, page_size: int = PAGE_SIZE) -> AsyncGenerator[list[Event], None]:
        """The session's stored events after `after`, oldest first, a page of `page_size` at a time
        (`GET /api/events?after=`), up to the newest one when the last page is read; `events` follows them live."""
        while True:
            params = {"after": after, "limit": page_size}
            page = await self._call("GET", "/api/events", params=params, attempts=ATTEMPTS)
            # The log's seq rises by one per event: a page's events are numbered from `after + 1`.
            events = [Event(seq=after + 1 + i, data=data) for i, data in enumerate(page["events"])]
            if events:
                if events[-1].seq != page["after"]:
                    raise ServerError(f"A page of events ended at {page['after']}, not {events[-1].seq}.", 502)
                yield events
            after = page["after"]
            if len(events) < page_size:
                return

    async def recent_events(self, count: int = 100) -> list[dict[str, Any]]:
        """The last `count` events, oldest first, as their payloads (`GET /api/events`)."""
        return list(await self._call("GET", "/api/events", params={"count": count}))

    async def interrupt(self) -> Snapshot:
        """Stop the running turn now; messages queued behind it get no turn (they stay in the history, marked
        `unanswered`, and a `send` waiting for one ends with `Reply.interrupted` true)."""
        return Snapshot.model_validate(await self._call("POST", "/api/interrupt"))

    async def system(self, message: str | dict[str, Any]) -> Message:
        """Post a system message: text becomes a notice; an object is published as an event and shown to the
        model at its next turn. Makes the session if it does not exist yet. Returns the message as posted."""
        text = message if isinstance(message, str) else json.dumps(message)
        return Message.model_validate((await self._call("POST", "/api/system", params={"message": text}))["res"])

    async def info(self) -> SessionInfo:
        found = await self.client.request("GET", f"/api/sessions/{self.id}")
        return SessionInfo.model_validate(found)

    async def rename(self, title: str) -> str:
        """Give the session a title of its own (the automatic title never replaces it); returns it as stored."""
        stored = await self.client.request("PATCH", f"/api/sessions/{self.id}", json={"title": title})
        self.title = str(stored["title"])
        return self.title

    async def archive(self, archived: bool = True) -> bool:
        action = "archive" if archived else "unarchive"
        return bool((await self.client.request("POST", f"/api/sessions/{self.id}/{action}"))["is_archived"])

    async def unarchive(self) -> bool:
        return await self.archive(False)

    async def delete(self) -> bool:
        """Delete the session, its messages and events, from memory and storage. Idempotent: returns whether
        there was a session to delete."""
        answer = await self.client.request("DELETE", f"/api/sessions/{self.id}")
        self.last_event_id = 0  # a session made again under this id numbers its events from the start
        return bool(answer["deleted"])

    async def set_model(self, rig: str) -> str:
        """Use another of the App's models (by label or slug) for later turns; returns its slug."""
        answer = await self._call("POST", "/api/control/model", params={"rig": rig, "app": self.client.app})
        return str(answer["rig"])

    async def dataframe(self) -> pandas.DataFrame:
        """The session's messages as a pandas DataFrame (pandas must be installed)."""
        return messages_frame(await self.messages())
