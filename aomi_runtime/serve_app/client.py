"""The Python client, async face: the HTTP API of `API.md` for notebooks and scripts, or, on the cluster, the
same routes run in this process over Ray handles (`AsyncClient.in_cluster`). `Client` is its sync face.

    async with AsyncClient("http://127.0.0.1:8000") as client:
        session = await client.session()
        reply = await session.send("/tool long_task {\"steps\": 3}")   # waits for the turn, shows progress
        print(reply.text)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import aconnect_sse

from ..agent.apps import DEFAULT_APP
from ..agent.errors import ServerError, SessionNotFound
from ..agent.records import Event, Message, SessionInfo, Snapshot, SystemEvent
from ..status import error_of_status
from .progress import TurnProgress, progress_for

if TYPE_CHECKING:
    import pandas

    from .settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"
IN_CLUSTER_URL = "http://in-cluster"
RECONNECTS = 10  # a stream reconnects this many times in a row before it gives up
KEEPALIVE_GRACE = 60.0  # the server sends a comment at least every 15 s: silence this long means a dead link
ATTEMPTS = 3  # of a call that is safe to repeat, when the connection fails
STATE_CHECK_SECONDS = 5.0  # a wait for a turn looks at the session this often when no event comes
RETRIED_STATUSES = {502, 503, 504}  # the runtime (re)starting, or a session's process replaced: try again


@dataclass(frozen=True)
class Reply:
    """One turn, as `send` saw it: the snapshot after it (its `system_events` are all those handed out while
    `send` ran: they are handed out once), the events it streamed, and how long it took."""

    request_id: str
    snapshot: Snapshot
    events: tuple[Event, ...]
    seconds: float

    @property
    def messages(self) -> list[Message]:
        """This turn's messages: the user's, then the agent's (text and tool results)."""
        turn: list[Message] = []
        for m in self.snapshot.messages:
            if m.request_id == self.request_id:
                turn.append(m)
            elif turn and m.sender == "user":
                break
            elif turn:
                turn.append(m)
        return turn

    @property
    def text(self) -> str:
        """The agent's last text of this turn (empty if it only called tools, or was stopped)."""
        said = [m.content for m in self.messages if m.sender == "agent" and m.tool_result is None and m.content]
        return said[-1] if said else ""

    @property
    def done(self) -> Event | None:
        """The turn's `processing_done` event (None if the turn was over before `send` began to follow it)."""
        return next((e for e in self.events if _ends(e, self.request_id)), None)

    @property
    def error(self) -> str | None:
        """What went wrong in the turn (the model failing, a turn cut short), or None."""
        if self.done is not None:
            return self.done.data.get("error")
        # The turn was over before `send` followed it: its error, if any, was handed out as a system event.
        return next((str(e["SystemError"]) for e in self.snapshot.system_events if "SystemError" in e), None)

    @property
    def interrupted(self) -> bool:
        return self.done is not None and bool(self.done.data.get("interrupted"))


def _ends(event: Event, request_id: str) -> bool:
    return event.type == "processing_done" and event.data.get("request_id") == request_id


def _outcome(done: Event) -> str:
    if "error" in done.data:
        return f"error: {done.data['error']}"
    return "interrupted" if done.data.get("interrupted") else "done"


def turn_finished(snapshot: Snapshot, request_id: str) -> bool:
    """Whether the turn of the message sent with `request_id` is over in `snapshot`: started (not queued), and
    either the session idle or a later message's turn started."""
    for i, m in enumerate(snapshot.messages):
        if m.request_id == request_id:
            if m.queued:
                return False
            later = snapshot.messages[i + 1 :]
            return not snapshot.is_processing or any(n.sender == "user" and not n.queued for n in later)
    return False


class AsyncClient:
    """A connection to the runtime for one App (and its key, if the App is keyed).

    Errors are the runtime's own classes (`SessionNotFound`, `Forbidden`, `MessageTooLarge`, ...), raised with
    the server's message; any other error answer raises `ServerError` (with its `status`).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        app: str = DEFAULT_APP,
        api_key: str | None = None,
        public_key: str | None = None,
        timeout: float = 30.0,
        progress: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.public_key = public_key
        self.progress = progress  # None: shown only where output is interactive
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, stop: Callable[[], None]) -> None:
        """Call `stop` (in a thread) when the client closes: a runtime the client started, say."""
        self._on_close.append(stop)

    @classmethod
    def in_cluster(cls, settings: Settings | None = None, *, address: str = "auto", **options: Any) -> AsyncClient:
        """A client that runs the routes in this process and reaches the runtime's actors over Ray handles, for
        a driver or notebook on the cluster; see `in_cluster_transport`."""
        return cls(IN_CLUSTER_URL, transport=in_cluster_transport(settings, address), **options)

    # --- the App -----------------------------------------------------------------------------------

    async def session(
        self, session_id: str | None = None, *, title: str | None = None, create: bool = True
    ) -> AsyncSession:
        """A new session (a fresh UUID4 id), or the one with `session_id`: loaded into memory if stored, made if
        not (ids are the client's to choose), or, with `create=False`, `SessionNotFound` raised."""
        if session_id is not None and not create:
            info = SessionInfo.model_validate(await self.request("GET", f"/api/sessions/{session_id}"))
            return AsyncSession(self, info.session_id, info.title)
        body = {"session_id": session_id or str(uuid.uuid4()), "public_key": self.public_key, "title": title}
        made = await self.request("POST", "/api/sessions", params={"app": self.app}, json=body)
        return AsyncSession(self, made["session_id"], made["title"])

    async def sessions(self, public_key: str | None = None, limit: int = 50) -> list[SessionInfo]:
        """The sessions of a public key (default: this client's), newest activity first."""
        key = public_key or self.public_key
        if not key:
            raise ValueError("sessions are listed per public key: give one here or to the client")
        found = await self.request("GET", "/api/sessions", params={"public_key": key, "limit": limit})
        return [SessionInfo.model_validate(s) for s in found]

    async def apps(self) -> list[str]:
        """The Apps this client's key may use."""
        return list(await self.request("GET", "/api/control/apps"))

    async def models(self) -> list[str]:
        """The labels of the models this App offers."""
        return list(await self.request("GET", "/api/control/models", params={"app": self.app}))

    async def health(self) -> bool:
        response = await self._http.get("/health")
        return response.status_code == 200 and response.text == "OK"

    # --- plumbing ----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        session_id: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        attempts: int = 1,
    ) -> Any:
        """One call of the API: the JSON answered, or the runtime's error raised. A call that is safe to repeat
        is tried up to `attempts` times while the connection fails or the runtime answers it is (re)starting."""
        headers = {"X-Session-Id": session_id} if session_id else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.request(method, path, params=query, json=json, headers=headers)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
            else:
                if not response.is_error:
                    return response.json()
                if attempt == attempts or not _retried(response):
                    raise _error(response)
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            stops, self._on_close = self._on_close, []
            for stop in stops:
                await asyncio.to_thread(stop)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()


def in_cluster_transport(settings: Settings | None = None, address: str = "auto") -> httpx.AsyncBaseTransport:
    """The runtime's routes run in this process, reaching its actors over Ray handles: the same answers as over
    HTTP, without Serve in between. Joins the cluster at `address` unless Ray is already initialised; settings
    come from the same `AOMI_*` environment as the deployment's, so the Apps, limits and keys agree."""
    import ray

    from ..actors.runtime import app_namespace
    from .in_process import InProcessTransport
    from .routes import create_api
    from .settings import Settings

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    settings = settings or Settings()
    for spec in settings.apps:  # reach a deployed runtime; never start a second one from a notebook
        namespace = app_namespace(settings.namespace, spec.name)
        try:
            ray.get_actor("directory", namespace=namespace)
        except ValueError:
            raise RuntimeError(
                f"No aomi runtime runs in this Ray cluster for the App {spec.name!r} (namespace {namespace!r}): "
                "deploy it first (`aomi-runtime serve --address auto`, or `serve deploy`), with the same AOMI_* "
                "settings as this process."
            ) from None
    return InProcessTransport(create_api(settings.runtime(), settings))


def _runtime_error_message(response: httpx.Response) -> str | None:
    """The message of an answer in the runtime's error shape, `{"error": ...}`; None for anything else (a proxy's
    page, Serve's 404 while the runtime is not deployed yet)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["error"]) if isinstance(body, dict) and set(body) == {"error"} else None


def _error(response: httpx.Response) -> Exception:
    message = _runtime_error_message(response)
    if message is None:
        return ServerError(
            f"{response.status_code} {response.reason_phrase}: {response.text[:200]}", response.status_code
        )
    return error_of_status(response.status_code, message)


def _retried(response: httpx.Response) -> bool:
    return response.status_code in RETRIED_STATUSES or _runtime_error_message(response) is None


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
        request_id = request_id or uuid.uuid4().hex
        started = time.monotonic()
        params = {
            "message": message,
            "app": self.client.app,
            "public_key": self.client.public_key,
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
                if _ends(event, request_id):
                    data = event.data
                    return (
                        f"error: {data['error']}"
                        if "error" in data
                        else "interrupted"
                        if data.get("interrupted")
                        else "done"
                    )
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

    async def events(self, *, after: int | None = None) -> AsyncIterator[Event]:
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
                        error = _error(response)
                        if not _retried(response):
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

    async def recent_events(self, count: int = 100) -> list[dict[str, Any]]:
        """The last `count` events, oldest first, as their payloads (`GET /api/events`)."""
        return list(await self._call("GET", "/api/events", params={"count": count}))

    async def interrupt(self) -> Snapshot:
        """Stop the running turn now (messages queued behind it still get theirs)."""
        return Snapshot.model_validate(await self._call("POST", "/api/interrupt"))

    async def system(self, message: str | dict[str, Any]) -> Any:
        """Post a system message: text becomes a notice; an object is published as an event and shown to the
        model at its next turn."""
        text = message if isinstance(message, str) else json.dumps(message)
        return (await self._call("POST", "/api/system", params={"message": text}))["res"]

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

    async def delete(self) -> None:
        """Delete the session, its messages and events, from memory and storage."""
        await self.client.request("DELETE", f"/api/sessions/{self.id}")
        self.last_event_id = 0  # a session made again under this id numbers its events from the start

    async def set_model(self, rig: str) -> str:
        """Use another of the App's models (by label or slug) for later turns; returns its slug."""
        answer = await self._call("POST", "/api/control/model", params={"rig": rig, "app": self.client.app})
        return str(answer["rig"])

    async def dataframe(self) -> pandas.DataFrame:
        """The session's messages as a pandas DataFrame (pandas must be installed)."""
        return messages_frame(await self.messages())


def messages_frame(messages: list[Message]) -> pandas.DataFrame:
    """Messages as a table: one row each, a column per field, the tool result split into topic and text."""
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install pandas") from None
    rows = [
        {
            "id": m.id,
            "sender": m.sender,
            "content": m.content,
            "tool_topic": m.tool_result[0] if m.tool_result else None,
            "tool_result": m.tool_result[1] if m.tool_result else None,
            "timestamp": m.timestamp,
            "is_streaming": m.is_streaming,
            "queued": m.queued,
            "request_id": m.request_id,
        }
        for m in messages
    ]
    columns = ["id", "sender", "content", "tool_topic", "tool_result", "timestamp", "is_streaming", "queued"]
    return pandas.DataFrame(rows, columns=[*columns, "request_id"])
