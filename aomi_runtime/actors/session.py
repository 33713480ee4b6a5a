"""The session actor: one per live session, a thin adapter around `agent.session.Session`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.apps import App, AppSpec
from ..agent.demo_tools import DEMO_TOOLS
from ..agent.errors import SessionClosed
from ..agent.models import Event, SessionInfo, StoredSession
from ..agent.session import Session
from ..agent.tools import ToolRegistry
from ..backends.models import load_model
from .store_client import StoreClient


def build_app(spec: AppSpec, model_keys: Mapping[str, SecretStr]) -> App:
    """The App a spec declares, with a provider per model (given its key) and its tool registry."""
    providers = {
        m.slug: load_model(m, model_keys[m.api_key_env].get_secret_value() if m.api_key_env in model_keys else None)
        for m in spec.models
    }
    return App(spec=spec, providers=providers, tools=ToolRegistry.from_names(spec.tools, DEMO_TOOLS))


@ray.remote(num_cpus=0, max_restarts=0)
class SessionActor:
    """Holds one live session. Methods return JSON bytes where the ingress sends them on as they are."""

    def __init__(self, spec: AppSpec, store: Any, model_keys: Mapping[str, SecretStr]) -> None:
        self._app = build_app(spec, model_keys)
        self._history = StoreClient(store)
        self._session: Session | None = None

    async def open(self, session_id: str, stored: StoredSession | None, public_key: str | None) -> None:
        """Become the live copy of a session: a stored one restored, or a new one created. Idempotent."""
        if self._session is not None:
            self._live.check_open()
            return
        if stored is not None:
            self._session = await Session.restore(self._app, self._history, stored)
        else:
            self._session = await Session.create(self._app, self._history, session_id, public_key=public_key)

    @property
    def _live(self) -> Session:
        if self._session is None:
            raise SessionClosed("This session actor holds no session yet; look the session up again.")
        return self._session

    async def chat(
        self, text: str, user_state: dict[str, Any] | None, request_id: str | None, public_key: str | None
    ) -> bytes:
        return (await self._live.chat(text, user_state, request_id, public_key)).model_dump_json().encode()

    async def state(self, user_state: dict[str, Any] | None) -> bytes:
        return (await self._live.snapshot(user_state)).model_dump_json().encode()

    async def interrupt(self) -> bytes:
        return (await self._live.interrupt()).model_dump_json().encode()

    async def post_system(self, message: str) -> Any:
        return await self._live.post_system(message)

    async def events_after(self, after: int, timeout: float) -> list[Event]:
        return await self._live.events_after(after, timeout)

    async def last_events(self, count: int) -> list[Event]:
        return await self._live.last_events(count)

    async def rename(self, title: str) -> SessionInfo:
        await self._live.rename(title)
        return SessionInfo.of(self._live.record)

    async def set_model(self, label_or_slug: str) -> str:
        return await self._live.set_model(label_or_slug)

    async def set_archived(self, archived: bool) -> SessionInfo:
        await self._live.set_archived(archived)
        return SessionInfo.of(self._live.record)

    async def info(self) -> SessionInfo:
        return SessionInfo.of(self._live.record)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
