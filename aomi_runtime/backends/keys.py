"""App keys: made once, shown once, stored only as a hash, checked in constant time.

A key reads `aomi_<id>_<secret>`: the id finds its row, the secret is compared by its SHA-256 (a random
256-bit secret needs no slow hash: nobody can guess it, so there is nothing to stretch).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, DateTime, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..agent.records import utcnow
from .history import MEMORY_URL, _dialects
from .migrations import Schema

KEY_PREFIX = "aomi"
KEYS_POOL = {"pool_size": 1, "max_overflow": 2, "pool_timeout": 10.0}  # a replica checks a key once per 30 s
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()

metadata = MetaData()  # a change to its tables needs a migration (backends/migrations/versions/)

keys = Table(
    "aomi_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("app", String(64), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


class KeyInfo(BaseModel):
    """A key as listed: never its secret."""

    key_id: str
    app: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    return (key_id, secret) if prefix == KEY_PREFIX and key_id and secret else None


class SqlKeys:
    """Keys in the history database, in a table of their own."""

    def __init__(self, engine: AsyncEngine, *, migrate: bool = True) -> None:
        self._engine = engine
        self._schema = Schema(engine, migrate=migrate)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> SqlKeys:
        """Keys beside the history a database URL names; otherwise (`memory://`, a custom backend) in an
        in-memory SQLite of this process, which only `create` in the same process can fill. `migrate`: as
        `SqlHistory`'s."""
        if url == MEMORY_URL or "://" not in url:
            return cls(create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool))
        return cls(_dialects.open_engine(url, postgres_pool=KEYS_POOL), migrate=migrate)

    async def setup(self) -> None:
        await self._schema.prepare()

    async def close(self) -> None:
        await self._engine.dispose()

    async def create(self, app: str, label: str = "") -> str:
        """Make a key for `app` and return it: the only time it is ever seen whole."""
        await self.setup()
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = {
            "key_id": key_id,
            "app": app,
            "secret_hash": _hash(secret),
            "label": label,
            "created_at": _dialects.naive_utc(utcnow()),
        }
        async with self._engine.begin() as conn:
            await conn.execute(keys.insert().values(row))
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    async def list(self, app: str | None = None) -> list[KeyInfo]:
        await self.setup()
        query = select(keys.c.key_id, keys.c.app, keys.c.label, keys.c.created_at, keys.c.revoked_at).order_by(
            keys.c.created_at
        )
        if app is not None:
            query = query.where(keys.c.app == app)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [KeyInfo.model_validate(r._asdict()) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        await self.setup()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(keys)
                .where(keys.c.key_id == key_id, keys.c.revoked_at.is_(None))
                .values(revoked_at=_dialects.naive_utc(utcnow()))
            )
        return bool(result.rowcount)

    async def check(self, app: str, key: str) -> bool:
        """Whether `key` is a live key of `app`. The secret is compared in constant time, found or not."""
        await self.setup()
        parts = _split(key)
        row: Any = None
        if parts is not None:
            query = select(keys.c.app, keys.c.secret_hash, keys.c.revoked_at).where(keys.c.key_id == parts[0])
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).first()
        presented = _hash(parts[1]) if parts else _DUMMY_HASH
        stored = row.secret_hash if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(presented, stored)
        return matches and row is not None and row.revoked_at is None and row.app == app
