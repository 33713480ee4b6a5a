"""The store as a session actor sees it: a `HistoryBackend` whose calls go to the App's store actor.

Kept apart from `store.py` so that session actors never import the backends (SQLAlchemy and its drivers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..agent.records import Commit, Event, SessionRecord, StoredSession


class StoreClient:
    """The `HistoryBackend` a session actor sees: each call goes to the App's store actor."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def commit(self, app: str, commit: Commit) -> None:
        await self._store.commit_json.remote(app, commit.model_dump_json().encode())

    async def load(self, app: str, session_id: str) -> StoredSession | None:
        raw = await self._store.load_json.remote(app, session_id)
        return None if raw is None else StoredSession.model_validate_json(raw)

    async def get(self, app: str, session_id: str) -> SessionRecord | None:
        return await self._store.get.remote(app, session_id)  # type: ignore[no-any-return]

    async def list(self, app: str, public_key: str | None, limit: int) -> list[SessionRecord]:
        return await self._store.list.remote(app, public_key, limit)  # type: ignore[no-any-return]

    async def events(self, app: str, session_id: str, after: int, limit: int) -> list[Event]:
        return await self._store.events.remote(app, session_id, after, limit)  # type: ignore[no-any-return]

    async def last_events(self, app: str, session_id: str, count: int) -> list[Event]:
        return await self._store.last_events.remote(app, session_id, count)  # type: ignore[no-any-return]

    async def delete(self, app: str, session_id: str) -> bool:
        return await self._store.delete.remote(app, session_id)  # type: ignore[no-any-return]

    async def stale(self, app: str, before: datetime, limit: int) -> list[str]:
        return await self._store.stale.remote(app, before, limit)  # type: ignore[no-any-return]

    async def owner(self, session_id: str) -> str | None:
        return await self._store.owner.remote(session_id)  # type: ignore[no-any-return]
