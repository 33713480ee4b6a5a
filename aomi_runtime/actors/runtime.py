"""The runtime as its callers see it (a Serve replica, a driver, a notebook on the cluster): Apps by name,
sessions by id, each call routed to the session's actor and retried once if that actor went away."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import RayActorError

from ..agent.apps import AppSpec
from ..agent.errors import AppMismatch, Forbidden, InvalidInput, SessionClosed, SessionNotFound, Unauthorized
from ..agent.records import Event, SessionInfo, SessionRecord
from .directory import SessionDirectory, actor_key, named_actors
from .placement import SessionPlacement
from .store import HistoryStore

HANDLE_CACHE_SIZE = 10_000
DEFAULT_NAMESPACE = "aomi"

_GONE = (RayActorError, SessionClosed)


def app_namespace(prefix: str, app: str) -> str:
    return f"{prefix}-{app}"


@dataclass(frozen=True)
class AppActors:
    """One App's actors, in its own namespace: the directory of its sessions and the store of its history."""

    spec: AppSpec
    namespace: str
    directory: Any
    store: Any

    @classmethod
    def start(
        cls,
        spec: AppSpec,
        database_url: str,
        namespace: str,
        model_keys: Mapping[str, SecretStr],
        placement: SessionPlacement | None = None,
    ) -> AppActors:
        """Get the App's actors, creating them if this is the first caller. Detached: they outlive any replica.

        Only the provider keys this App's models name reach its actors; `placement` says where its session
        actors may run."""
        own_keys = {m.api_key_env: model_keys[m.api_key_env] for m in spec.models if m.api_key_env in model_keys}
        options = {"namespace": namespace, "lifetime": "detached", "get_if_exists": True}
        store = HistoryStore.options(name="store", **options).remote(spec.name, database_url)
        directory = SessionDirectory.options(name="directory", **options).remote(
            spec, store, namespace, own_keys, placement=placement
        )
        return cls(spec=spec, namespace=namespace, directory=directory, store=store)


@dataclass(frozen=True)
class _Found:
    app: AppActors
    handle: Any


class Runtime:
    """Routes calls to session actors, caching their handles; each App's actors live in their own namespace."""

    def __init__(
        self,
        specs: Sequence[AppSpec],
        database_url: str,
        namespace: str = DEFAULT_NAMESPACE,
        model_keys: Mapping[str, SecretStr] | None = None,
        key_cache_seconds: float = 30.0,
        placement: SessionPlacement | None = None,
    ) -> None:
        self.apps = {
            s.name: AppActors.start(s, database_url, app_namespace(namespace, s.name), model_keys or {}, placement)
            for s in specs
        }
        self._handles: OrderedDict[str, _Found] = OrderedDict()
        self._good_keys: dict[tuple[str, str], float] = {}
        self.handle_counts = {"hits": 0, "misses": 0}  # of this replica's handle cache (`_handles`)
        self._key_cache_seconds = key_cache_seconds

    async def authorize(self, app: AppActors, key: str | None) -> None:
        """Let a request change `app`'s sessions: public Apps need no key, others one scoped to them.

        Raises:
            Unauthorized: no key sent to a keyed App.
            Forbidden: the key is unknown, revoked, or another App's.
        """
        if app.spec.public:
            return
        if not key:
            raise Unauthorized(f"The App {app.spec.name!r} needs a key: send it in the X-API-Key header.")
        if not await self._key_is_good(app, key):
            raise Forbidden(f"This key does not open the App {app.spec.name!r}.")

    async def visible_apps(self, key: str | None) -> list[str]:
        """The Apps a caller may use: the public ones, and the one its key opens."""
        keyed = [a for a in self.apps.values() if not a.spec.public]
        opened = await asyncio.gather(*(self._key_is_good(a, key) for a in keyed)) if key else []
        return [a.spec.name for a in self.apps.values() if a.spec.public] + [
            a.spec.name for a, ok in zip(keyed, opened, strict=False) if ok
        ]

    async def _key_is_good(self, app: AppActors, key: str) -> bool:
        # A good key is remembered for a short while (by its hash), so each request does not ask the database;
        # a revoked key stops working within `key_cache_seconds`.
        cache_key = (app.spec.name, hashlib.sha256(key.encode()).hexdigest())
        now = time.monotonic()
        if self._good_keys.get(cache_key, 0.0) > now:
            return True
        good: bool = await app.store.check_key.remote(key)
        if good:
            self._good_keys[cache_key] = now + self._key_cache_seconds
        return good

    def app(self, name: str) -> AppActors:
        try:
            return self.apps[name]
        except KeyError:
            raise InvalidInput(f"Unknown App {name!r}; this runtime serves: {', '.join(self.apps)}.") from None

    async def owner(self, session_id: str) -> AppActors | None:
        """The App a session belongs to, or None if no App has it."""
        if (found := self._handles.get(session_id)) is not None:
            return found.app
        owners = await asyncio.gather(*(a.store.owner.remote(session_id) for a in self.apps.values()))
        name = next((o for o in owners if o is not None), None)
        return None if name is None else self.apps.get(name)

    async def session_app(self, session_id: str) -> AppActors:
        """The App a session belongs to. Raises `SessionNotFound`."""
        owner = await self.owner(session_id)
        if owner is None:
            raise SessionNotFound(f"No session {session_id!r} exists.")
        return owner

    async def _resolve(
        self,
        session_id: str,
        *,
        app: str | None,
        create: bool,
        public_key: str | None = None,
        stale: Any = None,
        wait: float = 0.0,
    ) -> _Found | None:
        cached = self._handles.get(session_id)
        if cached is not None and stale is None:
            if app is not None and cached.app.spec.name != app:
                raise AppMismatch(f"The session {session_id!r} belongs to another App than {app!r}.")
            self._handles.move_to_end(session_id)
            self.handle_counts["hits"] += 1
            return cached
        self.handle_counts["misses"] += 1
        self._handles.pop(session_id, None)
        if app is not None:
            candidates = [self.app(app)]
        elif (owner := await self.owner(session_id)) is not None:
            candidates = [owner]
        elif wait:
            candidates = list(self.apps.values())  # not created yet: wait for it wherever it appears
        else:
            return None
        stale_key = None if stale is None else actor_key(stale)
        handles = await asyncio.gather(
            *(a.directory.get.remote(session_id, create, public_key, stale_key, wait) for a in candidates)
        )
        found = next((_Found(a, h) for a, h in zip(candidates, handles, strict=True) if h is not None), None)
        if found is not None:
            self._handles[session_id] = found
            if len(self._handles) > HANDLE_CACHE_SIZE:
                self._handles.popitem(last=False)
        return found

    async def call(
        self,
        session_id: str,
        method: str,
        *args: Any,
        app: str | None = None,
        create: bool = False,
        public_key: str | None = None,
    ) -> Any:
        """Call a session actor's method. A session that went away (evicted, restarted) is found again, once.

        Raises:
            SessionNotFound: no App has the session, and `create` is false.
        """
        stale = None
        for attempt in range(2):
            found = await self._resolve(session_id, app=app, create=create, public_key=public_key, stale=stale)
            if found is None:
                raise SessionNotFound(f"No session {session_id!r} exists; send a chat message to start it.")
            try:
                return await getattr(found.handle, method).remote(session_id, *args)
            except _GONE:
                if attempt:
                    raise
                self._handles.pop(session_id, None)
                stale = found.handle
        raise AssertionError("unreachable")  # pragma: no cover

    async def chat(
        self,
        session_id: str,
        text: str,
        *,
        app: str,
        user_state: dict[str, Any] | None,
        public_key: str | None,
        request_id: str | None = None,
    ) -> bytes:
        # The request id makes a retry safe (the one of `call`, or the client's own with the id it chose): a
        # message already stored is not added again.
        request_id = request_id or uuid.uuid4().hex
        result: bytes = await self.call(
            session_id, "chat", text, user_state, request_id, public_key, app=app, create=True, public_key=public_key
        )
        return result

    async def open_stream(self, session_id: str, stream: str, max_streams: int) -> int:
        """Count an event stream on a live or stored session; returns the seq it had published (0 for a session
        that does not exist yet: its streams are counted from their first wait once it does).

        Raises:
            LimitReached: the session has `max_streams` open already.
        """
        found = await self._resolve(session_id, app=None, create=False)
        if found is None:
            return 0
        try:
            published: int = await found.handle.open_stream.remote(session_id, stream, max_streams)
        except _GONE:
            self._handles.pop(session_id, None)
            return 0
        return published

    def close_stream(self, session_id: str, stream: str) -> None:
        """Stop counting a stream (told, not awaited; a stream never closed runs out its lease)."""
        if (found := self._handles.get(session_id)) is not None:
            found.handle.close_stream.remote(session_id, stream)

    async def events_after(self, session_id: str, after: int, timeout: float, stream: str | None = None) -> list[Event]:
        """The next events of a session, waiting up to `timeout`; a session not created yet is waited for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found = await self._resolve(session_id, app=None, create=False, wait=timeout)
        remaining = deadline - loop.time()  # one wait in all, so the caller can keep its stream alive
        if found is None or remaining <= 0:
            return []
        waiting = found.handle.events_after.remote(session_id, after, remaining, stream)
        try:
            events: list[Event] = await waiting
        except _GONE:
            self._handles.pop(session_id, None)
            await self._resolve(session_id, app=None, create=False, stale=found.handle)
            return []
        except asyncio.CancelledError:
            ray.cancel(waiting)  # the stream's client went: end its wait in the session actor now
            raise
        return events

    async def info(self, session_id: str) -> SessionInfo:
        owner = await self.session_app(session_id)
        record: SessionRecord | None = await owner.store.get.remote(owner.spec.name, session_id)
        if record is None:
            raise SessionNotFound(f"No session {session_id!r} exists.")
        return SessionInfo.of(record)

    async def list_sessions(self, apps: Sequence[str], public_key: str, limit: int) -> list[SessionInfo]:
        chosen = [self.app(name) for name in apps]
        lists = await asyncio.gather(*(a.store.list.remote(a.spec.name, public_key, limit) for a in chosen))
        records = sorted((r for rs in lists for r in rs), key=lambda r: r.updated_at, reverse=True)
        return [SessionInfo.of(r) for r in records[:limit]]

    async def delete(self, session_id: str, owner: AppActors | None = None) -> bool:
        """Delete a session of `owner` (by default, whichever App has it)."""
        owner = owner or await self.owner(session_id)
        self._handles.pop(session_id, None)
        if owner is None:
            return False
        deleted: bool = await owner.directory.delete.remote(session_id)
        return deleted

    async def close_sessions(self) -> int:
        """Stop every live session of every App (their state is stored); they load again when next asked for."""
        closed = await asyncio.gather(*(a.directory.close_all.remote() for a in self.apps.values()))
        self._handles.clear()
        return sum(closed)

    async def sweep(self) -> dict[str, dict[str, int]]:
        """Run every App's sweep now (each also runs on its own timer)."""
        reports = await asyncio.gather(*(a.directory.sweep.remote() for a in self.apps.values()))
        return dict(zip(self.apps, reports, strict=True))

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Each App's directory and store counters, for /metrics."""
        apps = list(self.apps.values())
        found = await asyncio.gather(
            *(a.directory.stats.remote() for a in apps), *(a.store.stats.remote() for a in apps)
        )
        return {a.spec.name: {**found[i], **found[len(apps) + i]} for i, a in enumerate(apps)}

    async def stop(self) -> None:
        """Stop every App's sessions, directory and store, and any actor left in their namespaces.
        Stored history stays."""
        for actors in self.apps.values():
            with contextlib.suppress(RayActorError):
                await actors.directory.shutdown.remote()
            with contextlib.suppress(RayActorError):
                await actors.store.close.remote()
            for actor in await asyncio.to_thread(named_actors, actors.namespace):
                ray.kill(actor, no_restart=True)
        self._handles.clear()
