"""Who may do what: the one place a request's App is resolved and its key checked, as the dependencies routes declare.

A public App needs no key; a keyed App needs one scoped to it, sent in `X-API-Key` (or `AOMI-APP-KEY`), where
Aomi's client sends one: to make a session or start a turn, to choose a model, to list sessions. Everything else
on an existing session (reads, interrupt, system, rename, archive, delete, the event stream) takes the session's id
as its capability. A route that names no App acts on the session's own; one naming another App gets 409. A route
names what it needs ("the session's App", "the App a turn runs in, authorized"), and gets the App resolved once,
as an object, to pass down.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from ..actors.app_actors import AppActors
from ..actors.runtime import Runtime
from ..agent.apps import DEFAULT_APP
from ..agent.errors import AppMismatch, Forbidden, SessionNotFound, Unauthorized
from .params import PathId, SessionId, check_session_id


class Keys:
    """Checks keys against each App's store, remembering a good one (by its hash) for a short while, so that
    each request does not ask the database: a revoked key stops working within `cache_seconds`."""

    def __init__(self, runtime: Runtime, cache_seconds: float) -> None:
        self._runtime = runtime
        self._cache_seconds = cache_seconds
        self._good: dict[tuple[str, str], float] = {}

    async def authorize(self, app: AppActors, key: str | None) -> None:
        """Let a request make or run `app`'s sessions: public Apps need no key, others one scoped to them.

        Raises:
            Unauthorized: no key sent to a keyed App.
            Forbidden: the key is unknown, revoked, or another App's.
        """
        if app.spec.public:
            return
        if not key:
            raise Unauthorized(f"The App {app.spec.name!r} needs a key: send it in the X-API-Key header.")
        if not await self._is_good(app, key):
            raise Forbidden(f"This key does not open the App {app.spec.name!r}.")

    async def visible_apps(self, key: str | None) -> list[AppActors]:
        """The Apps a caller may use: the public ones, and the one its key opens."""
        apps = self._runtime.apps.values()
        keyed = [a for a in apps if not a.spec.public]
        opened = await asyncio.gather(*(self._is_good(a, key) for a in keyed)) if key else []
        return [a for a in apps if a.spec.public] + [a for a, ok in zip(keyed, opened, strict=False) if ok]

    async def opened_app(self, key: str) -> AppActors:
        """The keyed App `key` opens. Raises `Forbidden` if it opens none."""
        keyed = [a for a in await self.visible_apps(key) if not a.spec.public]
        if not keyed:
            raise Forbidden("This key opens no App of this runtime.")
        return keyed[0]

    async def _is_good(self, app: AppActors, key: str) -> bool:
        cache_key = (app.spec.name, hashlib.sha256(key.encode()).hexdigest())
        now = time.monotonic()
        if self._good.get(cache_key, 0.0) > now:
            return True
        good = await self._runtime.check_key(app, key)
        if good:
            self._good[cache_key] = now + self._cache_seconds
        return good


# The dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on
# every request.
async def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


async def keys(request: Request) -> Keys:
    found: Keys = request.app.state.keys
    return found


RuntimeDep = Annotated[Runtime, Depends(runtime)]
KeysDep = Annotated[Keys, Depends(keys)]


async def api_key(
    x_api_key: Annotated[str | None, Header()] = None,
    aomi_app_key: Annotated[str | None, Header(alias="AOMI-APP-KEY")] = None,
) -> str | None:
    return x_api_key or aomi_app_key


ApiKey = Annotated[str | None, Depends(api_key)]


async def acting_app(
    runtime: Runtime,
    keys: Keys,
    session_id: str,
    owner: AppActors | None,
    named: str | None,
    key: str | None,
    *,
    key_needed: bool,
) -> AppActors:
    """The App a request on `session_id` acts on: the session's own (`owner`), or, for a session not made yet, the
    App named (`default` if none), which always needs its key. `key_needed`: the request needs the key on an
    existing session too (a turn, a model).

    Raises:
        AppMismatch: the request names another App than the session's (a session's App never changes).
        Unauthorized, Forbidden: the key is needed and missing or wrong.
        InvalidInput: the App named is unknown.
    """
    if owner is None:
        app = runtime.app(DEFAULT_APP if named is None else named)  # an empty name is an unknown App, as elsewhere
        await keys.authorize(app, key)
        return app
    if named is not None and runtime.app(named).spec.name != owner.spec.name:
        if key_needed:  # who may comes first: a keyless turn naming a keyed App is refused as such (401), not 409
            await keys.authorize(runtime.app(named), key)
        raise AppMismatch.of(session_id, named)
    if key_needed:
        await keys.authorize(owner, key)
    return owner


async def session_owner(runtime: RuntimeDep, session_id: SessionId) -> AppActors | None:
    return await runtime.owner(session_id)


async def path_owner(runtime: RuntimeDep, session_id: PathId) -> AppActors | None:
    return await runtime.owner(check_session_id(session_id))


Owner = Annotated[AppActors | None, Depends(session_owner)]
"""The App of the session named in `X-Session-Id`, None if no App has it (looked up once a request)."""


def _existing(owner: AppActors | None, session_id: str) -> AppActors:
    if owner is None:
        raise SessionNotFound(f"No session {session_id!r} exists.")
    return owner


async def header_session_app(owner: Owner, session_id: SessionId) -> AppActors:
    return _existing(owner, session_id)


async def keyed_session_app(keys: KeysDep, owner: Owner, session_id: SessionId, key: ApiKey) -> AppActors:
    app = _existing(owner, session_id)
    await keys.authorize(app, key)
    return app


async def path_session_app(owner: Annotated[AppActors | None, Depends(path_owner)], session_id: PathId) -> AppActors:
    return _existing(owner, session_id)


@dataclass
class Maker:
    """A keyless request that makes its session if it does not exist yet (system, `POST /api/sessions`): `app`,
    the App it acts on (`acting_app`), and `call`, which makes the session only where `app`'s key was checked."""

    runtime: Runtime
    keys: Keys
    session_id: str
    named: str | None
    key: str | None
    owner: AppActors | None
    app: AppActors

    @classmethod
    async def of(cls, runtime: Runtime, keys: Keys, session_id: str, named: str | None, key: str | None) -> Maker:
        owner = await runtime.owner(session_id)
        app = await acting_app(runtime, keys, session_id, owner, named, key, key_needed=False)
        return cls(runtime, keys, session_id, named, key, owner, app)

    async def call(self, method: str, *args: Any, make: bool = True, **kwargs: Any) -> Any:
        """Call the session's `method`; if it does not exist, make it in `app` first (`make`), else raise
        `SessionNotFound`.

        The owner found (maybe from this replica's handle cache) took no key; if the session is gone by the call
        (deleted, swept, by another replica), making it again is making a new session: it needs the key of the App
        it would be made in, as any new one (401/403, nothing made).
        """
        if self.owner is not None:
            try:
                return await self.runtime.call(self.session_id, method, *args, app=self.app, **kwargs)
            except SessionNotFound:
                if not make:
                    raise
            self.owner = None
            self.app = await acting_app(
                self.runtime, self.keys, self.session_id, None, self.named, self.key, key_needed=False
            )
        return await self.runtime.call(self.session_id, method, *args, app=self.app, create=make, **kwargs)


async def system_maker(
    runtime: RuntimeDep, keys: KeysDep, session_id: SessionId, key: ApiKey, app: str | None = None
) -> Maker:
    return await Maker.of(runtime, keys, session_id, app, key)


async def chat_app(
    runtime: RuntimeDep,
    keys: KeysDep,
    session_id: SessionId,
    owner: Owner,
    key: ApiKey,
    app: str | None = None,
    namespace: str | None = None,
) -> AppActors:
    """Chat also takes the App as `namespace`, as Aomi's client sends it."""
    named = app if app is not None else namespace
    return await acting_app(runtime, keys, session_id, owner, named, key, key_needed=True)


async def model_app(
    runtime: RuntimeDep, keys: KeysDep, session_id: SessionId, owner: Owner, key: ApiKey, app: str | None = None
) -> AppActors:
    return await acting_app(runtime, keys, session_id, owner, app, key, key_needed=True)


async def named_app(runtime: Runtime, keys: Keys, key: str | None, app: str | None) -> AppActors:
    actors = runtime.app(DEFAULT_APP if app is None else app)
    await keys.authorize(actors, key)
    return actors


async def caller_app(runtime: RuntimeDep, keys: KeysDep, key: ApiKey, app: str | None = None) -> AppActors:
    """The App a route that names no session acts on: the one named by `app`, else the one the caller's key
    opens (Aomi's client sends the key and no App), else `default`."""
    if app is None and key:
        return await keys.opened_app(key)
    return await named_app(runtime, keys, key, app)


OwnApp = Annotated[AppActors, Depends(header_session_app)]
"""The App of the session named in `X-Session-Id`, no key asked (its id is the capability); `SessionNotFound` if
none has it."""
OwnAppByPath = Annotated[AppActors, Depends(path_session_app)]
"""The same for the session named in the path."""
OwnAppKeyed = Annotated[AppActors, Depends(keyed_session_app)]
"""The App of the session named in `X-Session-Id`, the caller authorized for it (a control route: Aomi's client
sends the key there); `SessionNotFound` if none has it."""
SystemMaker = Annotated[Maker, Depends(system_maker)]
"""The session's App, no key asked; for a session not made yet, the App named by `app` (or `default`), authorized;
and the call that makes the session only so."""
ChatApp = Annotated[AppActors, Depends(chat_app)]
"""The App a turn runs in: the session's own, or the one named by `app` (or `namespace`) for a new session,
the caller authorized for it."""
ModelApp = Annotated[AppActors, Depends(model_app)]
"""The same for choosing a session's model."""
CallerApp = Annotated[AppActors, Depends(caller_app)]
"""The App named by `app`, else the one the caller's key opens, else `default`; the caller authorized for it."""


async def visible_apps(keys: KeysDep, key: ApiKey) -> list[AppActors]:
    return await keys.visible_apps(key)


VisibleApps = Annotated[list[AppActors], Depends(visible_apps)]
"""The Apps the caller may use: the public ones, and the one its key opens."""
