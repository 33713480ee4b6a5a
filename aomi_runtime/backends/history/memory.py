"""History kept in memory: for development and tests. Gone when its process stops."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime

from ...agent.errors import AppMismatch
from ...agent.records import Commit, Event, Message, SessionRecord, StoredSession


@dataclass
class _Stored:
    record: SessionRecord
    messages: dict[int, Message] = field(default_factory=dict)
    events: dict[int, Event] = field(default_factory=dict)


class InMemoryHistory:
    """A `HistoryBackend` in a dict. Values are copied in and out, as a database would."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Stored] = {}

    async def setup(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _scoped(self, app: str, session_id: str) -> _Stored | None:
        stored = self._sessions.get(session_id)
        return stored if stored is not None and stored.record.app == app else None

    async def commit(self, app: str, commit: Commit) -> None:
        session_id = commit.record.session_id
        stored = self._sessions.get(session_id)
        if (stored is not None and stored.record.app != app) or commit.record.app != app:
            raise AppMismatch.of(session_id, app)
        commit = commit.model_copy(deep=True)
        if stored is None:
            stored = self._sessions[session_id] = _Stored(record=commit.record)
        stored.record = commit.record
        stored.messages.update((m.id, m) for m in commit.messages if m.id is not None)
        for event in commit.events:
            stored.events.setdefault(event.seq, event)

    async def load(self, app: str, session_id: str) -> StoredSession | None:
        stored = self._scoped(app, session_id)
        if stored is None:
            return None
        messages = [stored.messages[i] for i in sorted(stored.messages)]
        return StoredSession(record=stored.record, messages=messages).model_copy(deep=True)

    async def get(self, app: str, session_id: str) -> SessionRecord | None:
        stored = self._scoped(app, session_id)
        return None if stored is None else stored.record.model_copy(deep=True)

    async def list(self, app: str, public_key: str | None, limit: int) -> builtins.list[SessionRecord]:
        records = [
            s.record for s in self._sessions.values() if s.record.app == app and s.record.public_key == public_key
        ]
        records.sort(key=lambda r: r.updated_at, reverse=True)
        return [r.model_copy(deep=True) for r in records[:limit]]

    async def messages(self, app: str, session_id: str, before: int | None, limit: int) -> builtins.list[Message]:
        stored = self._scoped(app, session_id)
        if stored is None or limit <= 0:
            return []
        ids = [i for i in sorted(stored.messages) if before is None or i < before][-limit:]
        return [stored.messages[i].model_copy(deep=True) for i in ids]

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        stored = self._scoped(app, session_id)
        if stored is None:
            return []
        return [stored.events[s] for s in sorted(stored.events) if s > after][:limit]

    async def last_events(self, app: str, session_id: str, count: int) -> builtins.list[Event]:
        stored = self._scoped(app, session_id)
        if stored is None or count <= 0:
            return []
        return [stored.events[s] for s in sorted(stored.events)[-count:]]

    async def delete(self, app: str, session_id: str) -> bool:
        if self._scoped(app, session_id) is None:
            return False
        del self._sessions[session_id]
        return True

    async def stale(self, app: str, before: datetime, limit: int) -> builtins.list[str]:
        old = [s.record for s in self._sessions.values() if s.record.app == app and s.record.updated_at < before]
        return [r.session_id for r in sorted(old, key=lambda r: r.updated_at)[:limit]]

    async def owner(self, session_id: str) -> str | None:
        stored = self._sessions.get(session_id)
        return None if stored is None else stored.record.app

    async def count(self, app: str) -> int:
        return sum(1 for s in self._sessions.values() if s.record.app == app)
