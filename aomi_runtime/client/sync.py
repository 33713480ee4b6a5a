"""The Python client, sync face, for notebooks and scripts: each call runs the async client on an event loop
of the client's own, in a background thread, so it works the same in a plain script and in a notebook
(whose own loop is already running).

    client = Client.local()                    # or Client("http://...", app=..., api_key=...)
    session = client.session()
    reply = session.send("count to 3")
    session.dataframe()
    client.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from ..agent.records import Event, Message, SessionInfo, Snapshot, new_request_id
from .async_client import DEFAULT_URL, IN_CLUSTER_URL, AsyncClient, ClientOptions
from .async_session import PAGE_SIZE, AsyncSession, SendOptions
from .reply import Reply

if TYPE_CHECKING:
    import pandas

    from ..serve_app.settings import Settings

T = TypeVar("T")
STOP_SECONDS = 10.0


class _Loop:
    """An event loop running in a daemon thread; `run` waits for a coroutine on it from any other thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aomi-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            # A programming error, as asyncio's own "event loop is already running" is: not one of the runtime's.
            raise RuntimeError("A sync client was called from its own event loop; use AsyncClient in async code.")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or a stopped notebook cell) stops the call too; it unwinds before anything else runs.
            future.cancel()
            concurrent.futures.wait([future], timeout=STOP_SECONDS)
            raise

    def iterate(self, agen: AsyncGenerator[T, None]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():  # closed: its `shutdown_asyncgens` closed `agen` as the client closed
                self.run(agen.aclose())

    def stop(self) -> None:
        if self._loop.is_closed():
            return

        async def wind_down() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()
            await self._loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(wind_down(), self._loop).result(timeout=STOP_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


class Client(contextlib.AbstractContextManager["Client"]):
    """A connection to the runtime for one App; the same methods as `AsyncClient`, called without `await`."""

    def __init__(self, url: str = DEFAULT_URL, **options: Unpack[ClientOptions]) -> None:
        """`options` are `AsyncClient`'s: `app`, `api_key`, `public_key`, `timeout`, `progress`, `transport`."""
        self._loop = _Loop()
        self._closed = False

        async def make() -> AsyncClient:  # on the loop that will use it
            return AsyncClient(url, **options)

        try:
            self._async = self._loop.run(make())
        except BaseException:
            self._loop.stop()
            raise

    @classmethod
    def local(cls, settings: Settings | None = None, **options: Unpack[ClientOptions]) -> Client:
        """Start the runtime in this process (a local Ray instance, unless Ray is already initialised, and
        Serve on a free port) and connect to it; `close` stops it. `settings` default to the embedded
        default: SQLite in ./aomi.db, the public `default` App."""
        from .bootstrap import launch_local  # Ray and the server, only for a runtime of the client's own

        launched = launch_local(settings)
        try:
            client = cls(launched.url, **options)
        except BaseException:
            launched.stop()
            raise
        client._async.on_close(launched.stop)
        return client

    @classmethod
    def in_cluster(cls, settings: Settings | None = None, *, address: str = "auto", **options: Any) -> Client:
        """See `AsyncClient.in_cluster`: the routes in this process, the actors over Ray handles."""
        from .bootstrap import in_cluster_transport  # Ray and the server, only for this mode

        transport = in_cluster_transport(settings, address)  # joins Ray from the caller's thread
        return cls(IN_CLUSTER_URL, transport=transport, **options)

    @property
    def url(self) -> str:
        return str(self._async._http.base_url)

    def session(self, session_id: str | None = None, *, title: str | None = None, create: bool = True) -> Session:
        return Session(self, self._loop.run(self._async.session(session_id, title=title, create=create)))

    def sessions(self, public_key: str | None = None, limit: int = 50) -> list[SessionInfo]:
        return self._loop.run(self._async.sessions(public_key, limit))

    def apps(self) -> list[str]:
        return self._loop.run(self._async.apps())

    def models(self) -> list[str]:
        return self._loop.run(self._async.models())

    def set_secrets(self, secrets: Mapping[str, str]) -> dict[str, str]:
        return self._loop.run(self._async.set_secrets(secrets))

    def delete_secret(self, name: str) -> bool:
        return self._loop.run(self._async.delete_secret(name))

    def clear_secrets(self) -> int:
        return self._loop.run(self._async.clear_secrets())

    def simulate(
        self, transactions: Sequence[Mapping[str, Any]], *, sender: str | None = None, chain_id: int | None = None
    ) -> dict[str, Any]:
        return self._loop.run(self._async.simulate(transactions, sender=sender, chain_id=chain_id))

    def health(self) -> bool:
        return self._loop.run(self._async.health())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._async.aclose())
        finally:
            self._loop.stop()

    def __exit__(self, *exc_info: object) -> None:  # `with` gives the instance itself (AbstractContextManager)
        self.close()


class Session:
    """One session; the same methods as `AsyncSession`, called without `await`. Interrupting a waiting `send`
    (Ctrl-C, or stopping the notebook cell) interrupts the turn too."""

    def __init__(self, client: Client, session: AsyncSession) -> None:
        self.client = client
        self._async = session

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.title!r}>"

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def title(self) -> str | None:
        return self._async.title

    @property
    def last_event_id(self) -> int:
        return self._async.last_event_id

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.client._loop.run(coro)

    def send(self, message: str, **options: Unpack[SendOptions]) -> Reply:
        """See `AsyncSession.send`; `options` are its: `user_state`, `wait`, `timeout`, `progress`, `request_id`."""
        request_id = options["request_id"] = options.get("request_id") or new_request_id()
        sent = self._async.send(message, **options)
        try:
            return self._run(sent)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):  # the Ctrl-C is what the caller must see
                self._interrupt_own_turn(request_id)
            raise

    def _interrupt_own_turn(self, request_id: str) -> None:
        # Only this message's own turn is stopped: not another one running while it waits in the queue.
        snapshot = self.state()
        started = [m for m in snapshot.messages if m.sender == "user" and not m.queued]
        if snapshot.is_processing and started and started[-1].request_id == request_id:
            self.interrupt()

    def events(self, *, after: int | None = None) -> Iterator[Event]:
        return self.client._loop.iterate(self._async.events(after=after))

    def state(self, user_state: dict[str, Any] | None = None) -> Snapshot:
        return self._run(self._async.state(user_state))

    def messages(self) -> list[Message]:
        return self._run(self._async.messages())

    def message_pages(self, page_size: int = PAGE_SIZE) -> Iterator[list[Message]]:
        return self.client._loop.iterate(self._async.message_pages(page_size))

    def event_pages(self, *, after: int = 0, page_size: int = PAGE_SIZE) -> Iterator[list[Event]]:
        return self.client._loop.iterate(self._async.event_pages(after=after, page_size=page_size))

    def recent_events(self, count: int = 100) -> list[dict[str, Any]]:
        return self._run(self._async.recent_events(count))

    def interrupt(self) -> Snapshot:
        return self._run(self._async.interrupt())

    def system(self, message: str | dict[str, Any]) -> Message:
        return self._run(self._async.system(message))

    def info(self) -> SessionInfo:
        return self._run(self._async.info())

    def rename(self, title: str) -> str:
        return self._run(self._async.rename(title))

    def archive(self, archived: bool = True) -> bool:
        return self._run(self._async.archive(archived))

    def unarchive(self) -> bool:
        return self._run(self._async.unarchive())

    def delete(self) -> bool:
        return self._run(self._async.delete())

    def set_model(self, rig: str) -> str:
        return self._run(self._async.set_model(rig))

    def dataframe(self) -> pandas.DataFrame:
        return self._run(self._async.dataframe())
