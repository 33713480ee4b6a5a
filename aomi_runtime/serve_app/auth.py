"""Who may do what: the one place a request's App is resolved and its key checked, as the dependencies routes declare.

A public App needs no key; a keyed App needs one scoped to it, sent in `X-API-Key` (or `AOMI-APP-KEY`). A
session's id is its capability: reads name the session alone; what changes a keyed App's sessions also needs
the App's key. A route names what it needs ("the session's App, authorized", "the named App, authorized"),
and gets the App resolved once, as an object, to pass down.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated

from fastapi import Depends, Header, Request

from ..actors.app_actors import AppActors
from ..actors.runtime import Runtime
from ..agent.apps import DEFAULT_APP
from ..agent.errors import Forbidden, Unauthorized
from .params import PathId, SessionId, check_session_id


class Keys:
    """Checks keys against each App's store, remembering a good one (by its hash) for a short while, so that
    each request does not ask the database: a revoked key stops working within `cache_seconds`."""

    def __init__(self, runtime: Runtime, cache_seconds: float) -> None:
        self._runtime = runtime
        self._cache_seconds = cache_seconds
        self._good: dict[tuple[str, str], float] = {}

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


async def _owner_authorized(runtime: Runtime, keys: Keys, session_id: str, key: str | None) -> AppActors:
    owner = await runtime.session_app(session_id)
    await keys.authorize(owner, key)
    return owner


async def header_session_app(runtime: RuntimeDep, keys: KeysDep, session_id: SessionId, key: ApiKey) -> AppActors:
    return await _owner_authorized(runtime, keys, session_id, key)


async def path_session_app(runtime: RuntimeDep, keys: KeysDep, session_id: PathId, key: ApiKey) -> AppActors:
    return await _owner_authorized(runtime, keys, check_session_id(session_id), key)


async def named_app(runtime: RuntimeDep, keys: KeysDep, key: ApiKey, app: str | None = None) -> AppActors:
    actors = runtime.app(app or DEFAULT_APP)
    await keys.authorize(actors, key)
    return actors


async def chat_app(
    runtime: RuntimeDep, keys: KeysDep, key: ApiKey, app: str | None = None, namespace: str | None = None
) -> AppActors:
    """Chat also takes the App as `namespace`, as Aomi's client sends it."""
    return await named_app(runtime, keys, key, app or namespace)


async def caller_app(runtime: RuntimeDep, keys: KeysDep, key: ApiKey, app: str | None = None) -> AppActors:
    """The App a route that names no session acts on: the one named by `app`, else the one the caller's key
    opens (Aomi's client sends the key and no App), else `default`."""
    if app is None and key:
        return await keys.opened_app(key)
    return await named_app(runtime, keys, key, app)


OwnApp = Annotated[AppActors, Depends(header_session_app)]
"""The App of the session named in `X-Session-Id`, the caller authorized for it; `SessionNotFound` if none has it."""
OwnAppByPath = Annotated[AppActors, Depends(path_session_app)]
"""The same for the session named in the path."""
NamedApp = Annotated[AppActors, Depends(named_app)]
"""The App named by `app` (`default` if none), the caller authorized for it."""
ChatApp = Annotated[AppActors, Depends(chat_app)]
CallerApp = Annotated[AppActors, Depends(caller_app)]
"""The App named by `app`, else the one the caller's key opens, else `default`; the caller authorized for it."""


async def visible_apps(keys: KeysDep, key: ApiKey) -> list[AppActors]:
    return await keys.visible_apps(key)


VisibleApps = Annotated[list[AppActors], Depends(visible_apps)]
"""The Apps the caller may use: the public ones, and the one its key opens."""
