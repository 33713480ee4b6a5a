"""The store as a session actor sees it: a `HistoryBackend` whose calls go to the App's store actor.

Kept apart from `store.py` so that session actors never import the backends (SQLAlchemy and its drivers).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from ..agent.records import Commit, Event, Message, SessionRecord, StoredSession


class StoreClient:
    """The `HistoryBackend` a session actor sees: each call goes to the App's store actor. Also the App's
    `SecretSource`: the store holds its clients' secrets."""

    def __init__(self, store: Any) -> None:
        # A Ray actor handle: its calls return Any, so each method below names the type the store returns.
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
        record: SessionRecord | None = await self._store.get.remote(app, session_id)
        return record

    async def list(self, app: str, public_key: str | None, limit: int) -> builtins.list[SessionRecord]:
        records: builtins.list[SessionRecord] = await self._store.list.remote(app, public_key, limit)
        return records

    async def messages(self, app: str, session_id: str, before: int | None, limit: int) -> builtins.list[Message]:
        page: builtins.list[Message] = await self._store.messages.remote(app, session_id, before, limit)
        return page

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        page: builtins.list[Event] = await self._store.events.remote(app, session_id, after, limit)
        return page

    async def last_events(self, app: str, session_id: str, count: int) -> builtins.list[Event]:
        last: builtins.list[Event] = await self._store.last_events.remote(app, session_id, count)
        return last

    async def delete(self, app: str, session_id: str) -> bool:
        existed: bool = await self._store.delete.remote(app, session_id)
        return existed

    async def stale(self, app: str, before: datetime, limit: int) -> builtins.list[str]:
        ids: builtins.list[str] = await self._store.stale.remote(app, before, limit)
        return ids

    async def owner(self, session_id: str) -> str | None:
        app: str | None = await self._store.owner.remote(session_id)
        return app

    async def count(self, app: str) -> int:
        stored: int = await self._store.count.remote(app)
        return stored

    async def secret(self, client_id: str, name: str) -> str | None:
        value: str | None = await self._store.secret.remote(client_id, name)
        return value
