"""The session directory: one per App, it finds a session's actor in three tiers: live, stored, new."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import RayActorError

from ..agent.apps import AppSpec
from ..agent.errors import AppMismatch, SessionClosed
from .session import SessionActor

log = logging.getLogger(__name__)

NAME_RETRIES = 40
NAME_RETRY_PAUSE = 0.025


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class SessionDirectory:
    """Maps session ids to live session actors, making exactly one actor per session however many ask at once.

    Restarted after a crash, it starts empty and finds live sessions again by their actor names, so its calls
    are safe to retry."""

    def __init__(self, spec: AppSpec, store: Any, namespace: str, model_keys: Mapping[str, SecretStr]) -> None:
        self._spec = spec
        self._model_keys = model_keys
        self._store = store
        self._namespace = namespace
        self._live: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._appeared = asyncio.Event()

    async def get(
        self, session_id: str, create: bool, public_key: str | None = None, stale: Any = None, wait: float = 0.0
    ) -> Any:
        """The session's live actor: tier 1 live, tier 2 rebuilt from the store, tier 3 new (if `create`).

        `stale` is a handle the caller found dead or closing: it is dropped before looking again.
        With `wait`, a session that does not exist yet is waited for that many seconds. None if not found.
        """
        if stale is not None and self._live.get(session_id) == stale:
            del self._live[session_id]
        handle = await self._find(session_id, create, public_key)
        deadline = asyncio.get_running_loop().time() + wait
        while handle is None and (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            appeared = self._appeared
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appeared.wait(), remaining)
            handle = self._live.get(session_id)
        return handle

    async def _find(self, session_id: str, create: bool, public_key: str | None) -> Any:
        while True:
            if (handle := self._live.get(session_id)) is not None:
                return handle
            loading = self._loading.get(session_id)
            if loading is None:
                break
            handle = await asyncio.shield(loading)
            if handle is not None or not create:
                return handle
        future = self._loading[session_id] = asyncio.get_running_loop().create_future()
        try:
            handle = await self._load(session_id, create, public_key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those who await it get it raised; no one else logs it
            raise
        else:
            future.set_result(handle)
            return handle
        finally:
            del self._loading[session_id]

    async def _load(self, session_id: str, create: bool, public_key: str | None) -> Any:
        stored = await self._store.load.remote(self._spec.name, session_id)
        if stored is None and not create:
            return None
        if stored is None and await self._store.owner.remote(session_id) is not None:
            raise AppMismatch(f"The session {session_id!r} belongs to another App than {self._spec.name!r}.")
        for _ in range(NAME_RETRIES):
            # A session actor is named in the App's namespace, so a restarted directory finds it again. If the
            # name is still held by an actor that is closing, wait for it to go.
            handle = SessionActor.options(
                name=f"session:{session_id}", namespace=self._namespace, lifetime="detached", get_if_exists=True
            ).remote(self._spec, self._store, self._model_keys)
            try:
                await handle.open.remote(session_id, stored, public_key)
                break
            except SessionClosed:
                ray.kill(handle, no_restart=True)
                await asyncio.sleep(NAME_RETRY_PAUSE)
            except BaseException:
                ray.kill(handle, no_restart=True)
                raise
        else:
            raise SessionClosed(f"The session {session_id!r} is still closing; try again in a moment.")
        self._live[session_id] = handle
        appeared, self._appeared = self._appeared, asyncio.Event()
        appeared.set()
        return handle

    async def delete(self, session_id: str) -> bool:
        """Stop the session's actor, if live, and delete it with its messages and events."""
        handle = self._live.pop(session_id, None)
        if handle is not None:
            await _stop(handle)
        deleted: bool = await self._store.delete.remote(self._spec.name, session_id)
        return deleted or handle is not None

    async def live_count(self) -> int:
        return len(self._live)

    async def close_all(self) -> int:
        """Stop every live session (their state is stored already). Returns how many there were."""
        handles, self._live = list(self._live.values()), {}
        await asyncio.gather(*(_stop(h) for h in handles))
        return len(handles)


async def _stop(handle: Any) -> None:
    with contextlib.suppress(RayActorError):
        await handle.close.remote()
    ray.kill(handle, no_restart=True)
