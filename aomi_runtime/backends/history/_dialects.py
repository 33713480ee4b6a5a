"""What differs between SQLite and PostgreSQL: URLs, the upsert construct, connection set-up, DDL locking."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ...agent.errors import ConfigError

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # In WAL mode this survives a process crash; only an OS crash may lose the last commits.
    "PRAGMA synchronous=NORMAL",
    # Other processes' writers (another App's store on the same file, the key store) wait this long for the lock.
    "PRAGMA busy_timeout=30000",
)
# Each App's store holds two engines (history, keys). With group commit a store writes on one connection at a
# time; the rest serve reads (cold loads, event pages, lists). 5 + 5 a history engine keeps a few Apps within
# PostgreSQL's default of 100 connections; a wait for a free one longer than POOL_TIMEOUT is a StorageError (503).
POSTGRES_POOL: Mapping[str, Any] = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 10.0}
DDL_LOCK_KEY = 0x616F6D69  # "aomi": serialises concurrent schema creation on PostgreSQL
DDL_TRIES, DDL_PAUSE = 8, 0.1  # SQLite's schema creation over other stores' writes: tried again, ~3 s in all


def normalize_url(url: str) -> str:
    """Accept the plain scheme names and pick the async driver: aiosqlite for SQLite, asyncpg for PostgreSQL."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def naive_utc(moment: datetime) -> datetime:
    """SQLite keeps no zone: store UTC without one everywhere, so both databases order the same way."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def insert(engine: AsyncEngine, table: Any) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_update` and `on_conflict_do_nothing`."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise ConfigError(f"History in {engine.dialect.name!r} is not supported; use SQLite or PostgreSQL.")


def configure(engine: AsyncEngine) -> None:
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()


async def lock_for_ddl(conn: AsyncConnection) -> None:
    """Several store actors may create the schema at once; on PostgreSQL that races, so take a lock."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})


def open_engine(url: str, *, postgres_pool: Mapping[str, Any] = POSTGRES_POOL, **options: Any) -> AsyncEngine:
    """An async engine for a plain or driver URL, set up for its dialect; `options` go to SQLAlchemy."""
    url = normalize_url(url)
    if url.startswith("postgresql"):
        options = {**postgres_pool, **options}
    engine = create_async_engine(url, **options)
    configure(engine)
    return engine


class Schema:
    """Creates a metadata's tables once per engine, whoever asks first (idempotent, lock-guarded)."""

    def __init__(self, engine: AsyncEngine, metadata: MetaData) -> None:
        self._engine = engine
        self._metadata = metadata
        self._lock = asyncio.Lock()
        self._created = False

    async def create(self) -> None:
        async with self._lock:
            if not self._created:
                raced = False
                for attempt in range(DDL_TRIES):
                    try:
                        async with self._engine.begin() as conn:
                            await lock_for_ddl(conn)
                            await conn.run_sync(self._metadata.create_all)
                        break
                    except OperationalError as exc:
                        # SQLite has no DDL lock: another store actor (another App's, on the same file) may create
                        # a table between create_all's check and its CREATE (checked again, it is there), or write
                        # between its check and its CREATE, which SQLite answers "database is locked" at once,
                        # whatever its busy timeout (a transaction that read may not write over a newer commit).
                        if "already exists" in str(exc) and not raced:
                            raced = True
                        elif "database is locked" not in str(exc) or attempt == DDL_TRIES - 1:
                            raise
                        else:
                            await asyncio.sleep(DDL_PAUSE * (attempt + 1))
                self._created = True
