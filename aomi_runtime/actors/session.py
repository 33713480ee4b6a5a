"""The session actor: a process that hosts up to `capacity` live sessions of one App, a thin adapter around
`agent.session`.

Each session it hosts is still an actor in the actor-model sense: its own state, its own queue of commands and
turns (tasks of their own on this process's event loop), its own event log, streams and leases; a call names
its session and reaches only that one. With a capacity of 1 this is a process per live session, the shape the
runtime was specified with; packed, one process's fixed cost (~74 MB, Ray's idle timers) is shared by many.

It starts blank and warm (its App built, its imports done), is handed sessions by the directory, and releases
them when they are evicted: starting a process costs about half a second, handing over a session a few
milliseconds. A caller holding a handle from before a session left gets `SessionClosed`, never another session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.apps import App, AppSpec
from ..agent.errors import LimitReached, NoCapacity, SessionClosed
from ..agent.logs import configure_logging
from ..agent.records import Event, Message, SessionInfo
from ..agent.session import LiveSession
from ..backends.models import load_model
from ..backends.otlp import start_tracing, stop_tracing_within
from .copies_out import CopiesOut
from .placement import SessionPlacement
from .readers import HEARTBEAT_SECONDS, Readers
from .store_client import StoreClient

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# Sync tools run in threads, off the event loop every session of the process shares; at most this many at once
# in one process, so that CPU-bound tools of some sessions cannot crowd out the others' requests.
TOOL_THREADS = 8


def assemble_app(spec: AppSpec, model_keys: Mapping[str, SecretStr]) -> App:
    """The App a spec declares, with a provider per model (given its key) and its tool registry."""
    providers = {
        m.slug: load_model(m, key.get_secret_value() if (key := model_keys.get(m.api_key_env or "")) else None)
        for m in spec.models
    }
    return App(spec=spec, providers=providers, tools=spec.tool_registry, make_provider=load_model)


def private_bytes() -> int:
    """This process's anonymous resident memory: its resident set less its resident file-backed pages (Ray's and
    Python's libraries, some 45 MB that every worker maps and the node holds once) and shared memory."""
    try:
        with open("/proc/self/statm") as statm:
            _size, resident, shared = statm.read().split()[:3]
            return (int(resident) - int(shared)) * _PAGE
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


@ray.remote(num_cpus=0, max_restarts=0)
class SessionActor:
    """Hosts up to `capacity` live sessions of one App. Methods return JSON bytes where the ingress sends them on
    as they are."""

    def __init__(
        self,
        spec: AppSpec,
        store: Any,
        model_keys: Mapping[str, SecretStr],
        directory: Any = None,
        capacity: int = 1,
        placement: SessionPlacement | None = None,
    ) -> None:
        configure_logging()
        start_tracing("session_actor")  # if OTEL_EXPORTER_OTLP_* say where to: else nothing of it is imported
        self._built_with = (spec, model_keys, placement or SessionPlacement())
        self._history = StoreClient(store)
        self._app = dataclasses.replace(assemble_app(spec, model_keys), secrets=self._history)
        self._directory = directory
        self._capacity = capacity
        self._sessions: dict[str, LiveSession] = {}
        self._opening: set[str] = set()
        self._readers = Readers()  # the ingress replicas holding copies of snapshots of these sessions
        self._copies = CopiesOut(self._readers, directory)
        self._stopped = False
        self._threads_set = False

    # --- held by the directory ------------------------------------------------------------------

    async def held(self) -> list[str]:
        """The ids of the sessions hosted (empty when blank). Raises `SessionClosed` once stopped, so that a
        restarted directory never takes a stopped actor (its providers closed) into its pool."""
        if self._stopped:
            raise SessionClosed("This session actor was stopped.")
        return list(self._sessions)

    async def built_with(self) -> tuple[AppSpec, Mapping[str, SecretStr], SessionPlacement]:
        """The spec, keys and placement its App's version was deployed with: a directory restarted with an older
        one takes them up."""
        return self._built_with

    async def open(self, session_id: str, public_key: str | None, fence: float = 0.0) -> str:
        """Host a session: a stored one read and restored ("loaded"), else a new one made ("created"). Idempotent
        for a session hosted ("live").

        Raises:
            AppMismatch: the id is another App's.
            LimitReached: the session is new, and the App holds its `limits.max_sessions`.
            NoCapacity: this actor hosts its capacity already (the directory places no more than that).
        """
        if session_id in self._sessions:
            self._live(session_id)
            return "live"
        if session_id in self._opening:  # the directory opens a session once at a time: never two copies of it
            raise SessionClosed(f"The session {session_id!r} is being opened here already; look it up again.")
        if self._stopped or len(self._sessions) + len(self._opening) >= self._capacity:
            raise NoCapacity(f"This session actor hosts its {self._capacity} sessions already.")
        self._use_tool_threads()
        self._opening.add(session_id)
        try:
            # One call to the store, which also tells whether the id is another App's.
            found = await self._history.load(self._app.name, session_id)
            if found is not None:
                session = await LiveSession.restore(self._app, self._history, found)
            else:
                await self._check_room_for_one_more()
                session = await LiveSession.create(self._app, self._history, session_id, public_key=public_key)
        finally:
            self._opening.discard(session_id)
        if self._directory is not None:
            session.on_turn = self._directory.record_turn.remote  # told, not awaited
        session.on_commit(functools.partial(self._readers.dropping, session_id))
        if fence:  # its last actor was lost: copies of its snapshots there may be served until then
            self._readers.fence(session_id, fence)
        self._sessions[session_id] = session
        return "loaded" if found is not None else "created"

    async def release(self, session_id: str, only_if_idle: bool = False, unless_running: bool = False) -> bool:
        """Close a session hosted here (its state is stored), freeing its place. With `only_if_idle`, keep a
        session that became busy since the directory looked, and return False; with `unless_running`, one that
        runs something (its streams move with it: their next wait finds it in its new place). True for one not
        hosted here."""
        session = self._sessions.get(session_id)
        if session is None:
            return True
        if (only_if_idle and session.is_busy) or (unless_running and session.is_running):
            return False
        del self._sessions[session_id]
        self._copies.forget(session_id)
        await self._readers.drop(session_id)  # its next holder does not know who holds copies
        await session.close()
        return True

    async def stop(self) -> None:
        """Before the actor is killed: close the sessions hosted (their state is stored) and the App's model
        providers (their SDK clients' connections). The actor serves nothing afterwards."""
        self._stopped = True
        sessions, self._sessions = list(self._sessions.values()), {}
        try:
            closing = (s.close() for s in sessions)
            await asyncio.gather(self._readers.drop_all(), *closing, return_exceptions=True)
        finally:
            await self._app.aclose()
            await stop_tracing_within()  # the spans of the last turns sent before the process is killed

    async def stats(self) -> dict[str, Any]:
        """What the directory decides eviction by: each session's idleness, and the process's private memory."""
        now = time.monotonic()
        return {
            "sessions": {
                session_id: {
                    "idle_seconds": now - session.last_active,
                    "busy": session.is_busy,
                    "running": session.is_running,
                    "subscribers": session.subscribers,
                }
                for session_id, session in self._sessions.items()
            },
            "private_bytes": private_bytes(),
        }

    async def _check_room_for_one_more(self) -> None:
        most = self._app.spec.limits.max_sessions
        # A soft bound: sessions created at the same moment may pass it by a few.
        if most is not None and await self._history.count(self._app.name) >= most:
            raise LimitReached(
                f"The App {self._app.name!r} holds its limit of {most} sessions: delete some, or raise its "
                "limits.max_sessions."
            )

    def _live(self, session_id: str) -> LiveSession:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionClosed(f"The session {session_id!r} is no longer held here; look it up again.")
        session.check_open()
        return session

    def _use_tool_threads(self) -> None:
        if not self._threads_set:  # the event loop is Ray's, running by the first call
            self._threads_set = True
            pool = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="aomi-tool")
            asyncio.get_running_loop().set_default_executor(pool)

    # --- what clients call, through the ingress ---------------------------------------------------

    async def chat(
        self,
        session_id: str,
        text: str,
        user_state: dict[str, Any] | None,
        request_id: str,
        public_key: str | None,
        client_id: str | None = None,
        traceparent: str | None = None,
    ) -> bytes:
        session = self._live(session_id)
        snapshot = await session.chat(text, user_state, request_id, public_key, client_id, traceparent)
        return snapshot.model_dump_json().encode()

    async def state(self, session_id: str, user_state: dict[str, Any] | None, client_id: str | None = None) -> bytes:
        return (await self._live(session_id).snapshot(user_state, client_id)).model_dump_json().encode()

    async def read(
        self, session_id: str, client_id: str | None, reader: str | None, peek: bool = False
    ) -> tuple[bytes, tuple[int, int] | None, bool]:
        """`state` for an ingress replica (`snapshot_copies.py`), which may keep a copy of a session at rest: the
        snapshot, the epoch and number its copy is counted under (None: not to be kept), and whether a client is
        bound to the session (a read naming a client changes nothing then)."""
        session = self._live(session_id)
        snapshot = await session.snapshot(None, client_id, peek=peek)
        bound = session.record.client_id is not None

        def here() -> bool:  # not a session that left meanwhile (`release`): its next actor does not count a copy
            return self._sessions.get(session_id) is session

        keep = here() and session.at_rest and not snapshot.system_events and (client_id is None or bound)
        hold = self._copies.hold(reader, session_id, here) if keep and reader is not None else None
        return snapshot.model_dump_json().encode(), hold, bound

    async def watch(
        self, reader: str, epoch: int, acked: int, released: dict[str, int], touched: list[str]
    ) -> tuple[int, int, dict[str, int]]:
        """An ingress replica's long poll for the copies it must drop (`readers.py`). The sessions it answered
        reads of from its copies (`touched`) were not idle."""
        now = time.monotonic()
        for session_id in touched:
            if (session := self._sessions.get(session_id)) is not None:
                session.last_active = now
        return await self._readers.watch(reader, epoch, acked, released, HEARTBEAT_SECONDS)

    async def leave(self, reader: str) -> None:
        """An ingress replica stopping: it serves no copy any more."""
        self._readers.leave(reader)

    async def interrupt(self, session_id: str) -> bytes:
        return (await self._live(session_id).interrupt()).model_dump_json().encode()

    async def post_system(self, session_id: str, message: str, traceparent: str | None = None) -> Message:
        return await self._live(session_id).post_system(message, traceparent)

    async def events_after(self, session_id: str, after: int, timeout: float, stream: str | None = None) -> list[Event]:
        return await self._live(session_id).events_after(after, timeout, stream)

    async def open_stream(self, session_id: str, stream: str, max_streams: int) -> int:
        return self._live(session_id).open_stream(stream, max_streams)

    async def close_stream(self, session_id: str, stream: str) -> None:
        self._live(session_id).close_stream(stream)

    async def last_events(self, session_id: str, count: int) -> list[Event]:
        return await self._live(session_id).last_events(count)

    async def events_page(self, session_id: str, after: int, limit: int) -> list[Event]:
        return await self._live(session_id).events_page(after, limit)

    async def messages_page(self, session_id: str, before: int | None, limit: int) -> list[Message]:
        return await self._live(session_id).messages_page(before, limit)

    async def rename(self, session_id: str, title: str) -> SessionInfo:
        session = self._live(session_id)
        await session.rename(title)
        return SessionInfo.of(session.record)

    async def set_model(self, session_id: str, label_or_slug: str, client_id: str | None = None) -> str:
        return await self._live(session_id).set_model(label_or_slug, client_id)

    async def set_archived(self, session_id: str, archived: bool) -> SessionInfo:
        session = self._live(session_id)
        await session.set_archived(archived)
        return SessionInfo.of(session.record)

    async def info(self, session_id: str) -> SessionInfo:
        return SessionInfo.of(self._live(session_id).record)
