"""The runtime as its callers see it (a Serve replica, a driver, a notebook on the cluster): Apps by name,
sessions by id, each call routed to the session's actor and retried once if that actor went away (an event
stream's calls: `event_streams.py`; pages of history: `pages.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import RayActorError

from ..agent.apps import AppSpec
from ..agent.errors import AppMismatch, InvalidInput, SessionClosed, SessionNotFound
from ..agent.records import SessionInfo, SessionRecord, new_request_id
from ..agent.tracing import current_traceparent
from .app_actors import DEFAULT_NAMESPACE, AppActors, app_namespace
from .directory import named_actors
from .hosts import actor_key
from .placement import SessionPlacement
from .snapshot_copies import MAX_BYTES, Copy, Fetched, SnapshotCopies

HANDLE_CACHE_SIZE = 10_000

GONE = (RayActorError, SessionClosed)  # the session's actor went, or the session left it


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
        placement: SessionPlacement | None = None,
        secrets_key: SecretStr | None = None,
        copy_bytes: int = MAX_BYTES,
        migrate: bool = True,
        deployed_at: float = 0.0,
        version_label: str | None = None,
    ) -> None:
        namespaces = {s.name: app_namespace(namespace, s.name) for s in specs}
        self.apps = {
            s.name: AppActors.start(
                s,
                database_url,
                namespaces[s.name],
                model_keys or {},
                placement,
                secrets_key,
                migrate=migrate,
                deployed_at=deployed_at,
                version_label=version_label,
            )
            for s in specs
        }
        self._handles: OrderedDict[str, _Found] = OrderedDict()
        self.handle_counts = {"hits": 0, "misses": 0}  # of this replica's handle cache (`_handles`)
        self.copies = SnapshotCopies(copy_bytes)  # 0: every read goes to the session

    async def check_key(self, app: AppActors, key: str) -> bool:
        """Whether `key` opens `app`: asked of the App's store, which keeps its keys hashed."""
        good: bool = await app.store.check_key.remote(key)
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

    def live_handle(self, session_id: str) -> Any:
        """The actor this replica last found the session live in, or None (it may have left there since)."""
        found = self._handles.get(session_id)
        return None if found is None else found.handle

    def forget(self, session_id: str) -> None:
        self._handles.pop(session_id, None)

    async def session_app(self, session_id: str) -> AppActors:
        """The App a session belongs to. Raises `SessionNotFound`."""
        owner = await self.owner(session_id)
        if owner is None:
            raise SessionNotFound(f"No session {session_id!r} exists.")
        return owner

    async def resolve(
        self,
        session_id: str,
        *,
        app: AppActors | None,
        create: bool,
        public_key: str | None = None,
        stale: Any = None,
        wait: float = 0.0,
    ) -> _Found | None:
        """The session's App and actor, from this replica's cache or its App's directory (`get`), or None."""
        cached = self._handles.get(session_id)
        if cached is not None and stale is None:
            if app is not None and cached.app.spec.name != app.spec.name:
                raise AppMismatch.of(session_id, app.spec.name)
            self._handles.move_to_end(session_id)
            self.handle_counts["hits"] += 1
            return cached
        self.handle_counts["misses"] += 1
        self._handles.pop(session_id, None)
        if app is not None:
            candidates = [app]
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
        app: AppActors | None = None,
        create: bool = False,
        public_key: str | None = None,
    ) -> Any:
        """Call a session actor's method. A session that went away (evicted, restarted) is found again, once.

        Raises:
            SessionNotFound: no App has the session, and `create` is false.
        """
        result, _ = await self._call(session_id, method, args, app=app, create=create, public_key=public_key)
        return result

    async def read_state(self, session_id: str, client_id: str | None = None, *, peek: bool = False) -> Copy:
        """A session's snapshot (as `state` with no user_state), from this process's copy where it holds a good one.
        A `peek` hands out no system event (a copy, of a session at rest, has none to hand out).

        Raises:
            SessionNotFound: no App has the session.
        """

        async def fetch() -> Fetched:
            args = (client_id, self.copies.reader, peek)
            (body, hold, bound), found = await self._call(session_id, "read", args)
            return Fetched(body, found.handle, bound, hold)

        return await self.copies.read(session_id, client_id, fetch)

    async def _call(
        self,
        session_id: str,
        method: str,
        args: tuple[Any, ...],
        *,
        app: AppActors | None = None,
        create: bool = False,
        public_key: str | None = None,
    ) -> tuple[Any, _Found]:
        stale = None
        for attempt in range(2):
            found = await self.resolve(session_id, app=app, create=create, public_key=public_key, stale=stale)
            if found is None:
                raise SessionNotFound(f"No session {session_id!r} exists; send a chat message to start it.")
            try:
                return await getattr(found.handle, method).remote(session_id, *args), found
            except GONE:
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
        app: AppActors,
        user_state: dict[str, Any] | None,
        public_key: str | None,
        request_id: str | None = None,
        client_id: str | None = None,
    ) -> bytes:
        # The request id makes a retry safe (the one of `call`, or the client's own with the id it chose): a
        # message already stored is not added again.
        request_id = request_id or new_request_id()
        result: bytes = await self.call(
            session_id,
            "chat",
            text,
            user_state,
            request_id,
            public_key,
            client_id,
            current_traceparent(),  # the turn's spans are children of the caller's (the HTTP request's) span
            app=app,
            create=True,
            public_key=public_key,
        )
        return result

    async def info(self, session_id: str) -> SessionInfo:
        owner = await self.session_app(session_id)
        record: SessionRecord | None = await owner.store.get.remote(owner.spec.name, session_id)
        if record is None:
            raise SessionNotFound(f"No session {session_id!r} exists.")
        return SessionInfo.of(record)

    async def list_sessions(self, apps: Sequence[AppActors], public_key: str, limit: int) -> list[SessionInfo]:
        lists = await asyncio.gather(*(a.store.list.remote(a.spec.name, public_key, limit) for a in apps))
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
        self.copies.close()
