"""The session actor: a process that holds one live session at a time, a thin adapter around `agent.session`.

It starts blank and warm (its App built, its imports done), is handed a session by the directory, and when
that session is evicted it becomes blank again and goes back to the directory's pool: starting a process
costs about half a second, handing over a session a few milliseconds. Every call names its session, so a
caller holding a handle from before the actor changed hands gets `SessionClosed`, never another session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.apps import App, AppSpec
from ..agent.errors import SessionClosed
from ..agent.logs import configure_logging
from ..agent.records import Event, SessionInfo
from ..agent.session import LiveSession
from ..backends.models import load_model
from .store_client import StoreClient

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def assemble_app(spec: AppSpec, model_keys: Mapping[str, SecretStr]) -> App:
    """The App a spec declares, with a provider per model (given its key) and its tool registry."""
    providers = {
        m.slug: load_model(m, key.get_secret_value() if (key := model_keys.get(m.api_key_env or "")) else None)
        for m in spec.models
    }
    return App(spec=spec, providers=providers, tools=spec.tool_registry)


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
    """Holds one live session at a time. Methods return JSON bytes where the ingress sends them on as they are."""

    def __init__(self, spec: AppSpec, store: Any, model_keys: Mapping[str, SecretStr], directory: Any = None) -> None:
        configure_logging()
        self._app = assemble_app(spec, model_keys)
        self._history = StoreClient(store)
        self._directory = directory
        self._session: LiveSession | None = None
        self._stopped = False

    # --- held by the directory ------------------------------------------------------------------

    async def held(self) -> str | None:
        """The id of the session held, or None when blank. Raises `SessionClosed` once stopped, so that a
        restarted directory never takes a stopped actor (its providers closed) into its pool."""
        if self._stopped:
            raise SessionClosed("This session actor was stopped.")
        return None if self._session is None else self._session.session_id

    async def open(self, session_id: str, stored: bool, public_key: str | None) -> str:
        """Hold a session: a `stored` one read and restored ("loaded"), else a new one made ("created").
        Idempotent for the session held ("live").

        Raises:
            AppMismatch: the id is another App's.
        """
        if self._session is not None:
            self._live(session_id)
            return "live"
        found = await self._history.load(self._app.name, session_id) if stored else None
        if found is not None:
            session = await LiveSession.restore(self._app, self._history, found)
        else:  # new, or deleted since the directory looked
            session = await LiveSession.create(self._app, self._history, session_id, public_key=public_key)
        if self._directory is not None:
            session.on_turn = self._directory.record_turn.remote  # told, not awaited
        self._session = session
        return "loaded" if found is not None else "created"

    async def release(self, session_id: str, only_if_idle: bool = False) -> bool:
        """Close the session held (its state is stored) and become blank, ready for another. With
        `only_if_idle`, keep a session that became busy since the directory looked, and return False."""
        session = self._live(session_id)
        if only_if_idle and session.is_busy:
            return False
        self._session = None
        await session.close()
        return True

    async def stop(self) -> None:
        """Before the actor is killed: close the session held, if any (its state is stored), and the App's model
        providers (their SDK clients' connections). The actor serves nothing afterwards."""
        self._stopped = True
        session, self._session = self._session, None
        try:
            if session is not None:
                await session.close()
        finally:
            await self._app.aclose()

    async def stats(self) -> dict[str, Any]:
        """What the directory decides eviction by."""
        session = self._session
        return {
            "session_id": None if session is None else session.session_id,
            "idle_seconds": 0.0 if session is None else time.monotonic() - session.last_active,
            "busy": session is not None and session.is_busy,
            "subscribers": 0 if session is None else session.subscribers,
            "private_bytes": private_bytes(),
        }

    def _live(self, session_id: str) -> LiveSession:
        session = self._session
        if session is None or session.session_id != session_id:
            raise SessionClosed(f"The session {session_id!r} is no longer held here; look it up again.")
        session.check_open()
        return session

    # --- what clients call, through the ingress ---------------------------------------------------

    async def chat(
        self, session_id: str, text: str, user_state: dict[str, Any] | None, request_id: str, public_key: str | None
    ) -> bytes:
        snapshot = await self._live(session_id).chat(text, user_state, request_id, public_key)
        return snapshot.model_dump_json().encode()

    async def state(self, session_id: str, user_state: dict[str, Any] | None) -> bytes:
        return (await self._live(session_id).snapshot(user_state)).model_dump_json().encode()

    async def interrupt(self, session_id: str) -> bytes:
        return (await self._live(session_id).interrupt()).model_dump_json().encode()

    async def post_system(self, session_id: str, message: str) -> Any:
        return await self._live(session_id).post_system(message)

    async def events_after(self, session_id: str, after: int, timeout: float, stream: str | None = None) -> list[Event]:
        return await self._live(session_id).events_after(after, timeout, stream)

    async def open_stream(self, session_id: str, stream: str, max_streams: int) -> int:
        return self._live(session_id).open_stream(stream, max_streams)

    async def close_stream(self, session_id: str, stream: str) -> None:
        self._live(session_id).close_stream(stream)

    async def last_events(self, session_id: str, count: int) -> list[Event]:
        return await self._live(session_id).last_events(count)

    async def rename(self, session_id: str, title: str) -> SessionInfo:
        session = self._live(session_id)
        await session.rename(title)
        return SessionInfo.of(session.record)

    async def set_model(self, session_id: str, label_or_slug: str) -> str:
        return await self._live(session_id).set_model(label_or_slug)

    async def set_archived(self, session_id: str, archived: bool) -> SessionInfo:
        session = self._live(session_id)
        await session.set_archived(archived)
        return SessionInfo.of(session.record)

    async def info(self, session_id: str) -> SessionInfo:
        return SessionInfo.of(self._live(session_id).record)
