"""History in SQL through SQLAlchemy's async engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production.

Records, messages and events are stored as JSON text beside the columns that are queried, so text comes
back byte for byte whatever it holds (PostgreSQL's text type refuses NUL; escaped in JSON it is fine).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...agent.errors import AppMismatch, StorageError
from ...agent.records import Commit, Event, Message, SessionRecord, StoredSession
from ..migrations import Schema
from . import _dialects

metadata = MetaData()  # a change to its tables needs a migration (backends/migrations/versions/)

sessions = Table(
    "aomi_sessions",
    metadata,
    Column("session_id", String(128), primary_key=True),
    Column("app", String(64), nullable=False),
    Column("public_key", String(256)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
    Index("aomi_sessions_by_owner", "app", "public_key", "updated_at"),
    Index("aomi_sessions_by_age", "app", "updated_at"),
)


def _numbered_rows(name: str, number: str) -> Table:
    """A table of one session's numbered rows (its messages by id, its events by seq), each kept as JSON."""
    return Table(
        name,
        metadata,
        Column("session_id", String(128), primary_key=True),
        Column(number, Integer, primary_key=True, autoincrement=False),
        Column("data", Text, nullable=False),
    )


messages = _numbered_rows("aomi_messages", "id")
events = _numbered_rows("aomi_events", "seq")

RECORD, MESSAGE = 0, 1


class SqlHistory:
    """A `HistoryBackend` on an `AsyncEngine`. `from_url` builds one that owns its engine. `setup` upgrades the
    database's schema to this version's, or with `migrate` off refuses one behind it (`migrations.prepare`)."""

    def __init__(self, engine: AsyncEngine, *, migrate: bool = True) -> None:
        self._engine = engine
        self._schema = Schema(engine, migrate=migrate)
        # SQLite has one writer at a time: writers of this process queue here, in order, rather than in
        # SQLite's busy handler, which gives up after its timeout (under load, with a 503 for a message).
        self._one_writer: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self._upsert_record, self._upsert_message, self._append_event = _writes(engine)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, **engine_options: Any) -> SqlHistory:
        return cls(_dialects.open_engine(url, **engine_options), migrate=migrate)

    async def setup(self) -> None:
        # Every operation calls this first. An upgrade of the schema waits for the database's write lock, which
        # another App's store may hold: should that fail, a StorageError (503, "try again"), not a raw driver
        # error (500); the next call tries again.
        try:
            await self._schema.prepare()
        except SQLAlchemyError as exc:
            raise StorageError(f"The history database could not be prepared: {type(exc).__name__}.") from exc

    async def close(self) -> None:
        await self._engine.dispose()

    async def commit(self, app: str, commit: Commit) -> None:
        await self.commit_batch(app, [commit])

    async def commit_batch(self, app: str, commits: Sequence[Commit]) -> None:
        """Several sessions' commits in one transaction (`BatchCommits`); one commit per session id, as a
        multi-row upsert may not touch a row twice on PostgreSQL."""
        for commit in commits:
            if commit.record.app != app:
                raise AppMismatch.of(commit.record.session_id, app)
        records = [_record_row(app, c.record) for c in commits]
        rows = [
            {"session_id": c.record.session_id, "id": m.id, "data": m.model_dump_json()}
            for c in commits
            for m in c.messages
        ]
        logged = [
            {"session_id": c.record.session_id, "seq": e.seq, "data": _event_json(e)} for c in commits for e in c.events
        ]
        try:
            async with self._one_writer, self._engine.begin() as conn:
                # A session of another App is left as it is by the upsert's WHERE, so it comes back missing.
                upserted = {r.session_id for r in await conn.execute(self._upsert_record, records)}
                if len(upserted) < len(records):
                    missing = next(r["session_id"] for r in records if r["session_id"] not in upserted)
                    raise AppMismatch.of(missing, app)
                if rows:
                    await conn.execute(self._upsert_message, rows)
                if logged:
                    await conn.execute(self._append_event, logged)
        except SQLAlchemyError as exc:
            ids = ", ".join(repr(c.record.session_id) for c in commits)
            raise StorageError(f"The history database did not store the session {ids}: {type(exc).__name__}.") from exc

    async def load(self, app: str, session_id: str) -> StoredSession | None:
        raw = await self.load_json(app, session_id)
        return None if raw is None else StoredSession.model_validate_json(raw)

    async def load_json(self, app: str, session_id: str) -> bytes | None:
        # One round trip: the record and every message, in order. The rows are JSON already: joined, not parsed,
        # so the reader validates the whole session in one call (`LoadsJson`).
        owned = and_(sessions.c.session_id == session_id, sessions.c.app == app)
        query = union_all(
            select(literal(RECORD).label("kind"), literal(-1).label("pos"), sessions.c.data).where(owned),
            select(literal(MESSAGE), messages.c.id, messages.c.data)
            .join(sessions, sessions.c.session_id == messages.c.session_id)
            .where(owned),
        ).order_by("kind", "pos")
        rows = await self._read(query)
        if not rows or rows[0][0] != RECORD:
            return None
        body = ",".join([row[2] for row in rows[1:]])  # by index: a Row's attribute lookup costs ten times more
        return f'{{"record":{rows[0][2]},"messages":[{body}]}}'.encode()

    async def get(self, app: str, session_id: str) -> SessionRecord | None:
        query = select(sessions.c.data).where(sessions.c.session_id == session_id, sessions.c.app == app)
        rows = await self._read(query)
        return SessionRecord.model_validate_json(rows[0].data) if rows else None

    async def list(self, app: str, public_key: str | None, limit: int) -> builtins.list[SessionRecord]:
        owner = sessions.c.public_key.is_(None) if public_key is None else sessions.c.public_key == public_key
        query = (
            select(sessions.c.data)
            .where(sessions.c.app == app, owner)
            .order_by(sessions.c.updated_at.desc(), sessions.c.session_id)
            .limit(limit)
        )
        return [SessionRecord.model_validate_json(r.data) for r in await self._read(query)]

    async def messages(self, app: str, session_id: str, before: int | None, limit: int) -> builtins.list[Message]:
        if limit <= 0:
            return []
        query = (
            select(messages.c.data)
            .join(sessions, sessions.c.session_id == messages.c.session_id)
            .where(messages.c.session_id == session_id, sessions.c.app == app)
        )
        if before is not None:
            query = query.where(messages.c.id < before)
        # Newest first on the primary key (session_id, id), so a page costs its own rows only; turned to message order.
        rows = await self._read(query.order_by(messages.c.id.desc()).limit(limit))
        return [Message.model_validate_json(row[0]) for row in reversed(rows)]

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        query = self._events_of(app, session_id).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
        return [Event(seq=r.seq, data=json.loads(r.data)) for r in await self._read(query)]

    async def last_events(self, app: str, session_id: str, count: int) -> builtins.list[Event]:
        if count <= 0:
            return []
        query = self._events_of(app, session_id).order_by(events.c.seq.desc()).limit(count)
        return [Event(seq=r.seq, data=json.loads(r.data)) for r in reversed(await self._read(query))]

    async def delete(self, app: str, session_id: str) -> bool:
        try:
            async with self._one_writer, self._engine.begin() as conn:
                found = await conn.execute(
                    sessions.delete()
                    .where(sessions.c.session_id == session_id, sessions.c.app == app)
                    .returning(sessions.c.session_id)
                )
                if found.first() is None:
                    return False
                await conn.execute(messages.delete().where(messages.c.session_id == session_id))
                await conn.execute(events.delete().where(events.c.session_id == session_id))
                return True
        except SQLAlchemyError as exc:
            raise StorageError(
                f"The history database did not delete the session {session_id!r}: {type(exc).__name__}."
            ) from exc

    async def stale(self, app: str, before: datetime, limit: int) -> builtins.list[str]:
        query = (
            select(sessions.c.session_id)
            .where(sessions.c.app == app, sessions.c.updated_at < _dialects.naive_utc(before))
            .order_by(sessions.c.updated_at)
            .limit(limit)
        )
        return [str(r.session_id) for r in await self._read(query)]

    async def owner(self, session_id: str) -> str | None:
        rows = await self._read(select(sessions.c.app).where(sessions.c.session_id == session_id))
        return str(rows[0].app) if rows else None

    async def count(self, app: str) -> int:
        rows = await self._read(select(func.count()).select_from(sessions).where(sessions.c.app == app))
        return int(rows[0][0])

    def _events_of(self, app: str, session_id: str) -> Any:
        return (
            select(events.c.seq, events.c.data)
            .join(sessions, sessions.c.session_id == events.c.session_id)
            .where(events.c.session_id == session_id, sessions.c.app == app)
        )

    async def _read(self, query: Any) -> builtins.list[Row[*tuple[Any, ...]]]:
        try:
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        except SQLAlchemyError as exc:
            raise StorageError(f"The history database could not be read: {type(exc).__name__}.") from exc


def _writes(engine: AsyncEngine) -> tuple[Any, Any, Any]:
    """The three statements of a commit, each run once for all its rows (and a batch's)."""
    record = _dialects.insert(engine, sessions)
    record = record.on_conflict_do_update(
        index_elements=[sessions.c.session_id],
        set_={k: record.excluded[k] for k in ("public_key", "updated_at", "data")},
        where=sessions.c.app == record.excluded.app,
    ).returning(sessions.c.session_id)
    message = _dialects.insert(engine, messages)
    message = message.on_conflict_do_update(
        index_elements=[messages.c.session_id, messages.c.id], set_={"data": message.excluded.data}
    )
    return record, message, _dialects.insert(engine, events).on_conflict_do_nothing()


def _record_row(app: str, record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "app": app,
        "public_key": record.public_key,
        "created_at": _dialects.naive_utc(record.created_at),
        "updated_at": _dialects.naive_utc(record.updated_at),
        "data": record.model_dump_json(),
    }


def _event_json(event: Event) -> str:
    return to_json(event.data).decode()
