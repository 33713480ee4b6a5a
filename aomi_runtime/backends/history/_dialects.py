"""What differs between SQLite and PostgreSQL: URLs, the upsert construct, connection set-up."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ...agent.errors import ConfigError

SQLITE_PRAGMAS = (
    # Other processes' writers (another App's store on the same file, the key store, a schema upgrade) wait this
    # long for the lock; first, so that the switch to WAL of a new file waits too.
    "PRAGMA busy_timeout=30000",
    "PRAGMA journal_mode=WAL",
    # In WAL mode this survives a process crash; only an OS crash may lose the last commits.
    "PRAGMA synchronous=NORMAL",
)
# Each App's store holds two engines (history, keys). With group commit a store writes on one connection at a
# time; the rest serve reads (cold loads, event pages, lists). 5 + 5 a history engine keeps a few Apps within
# PostgreSQL's default of 100 connections; a wait for a free one longer than POOL_TIMEOUT is a StorageError (503).
POSTGRES_POOL: Mapping[str, Any] = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 10.0}


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


def open_engine(url: str, *, postgres_pool: Mapping[str, Any] = POSTGRES_POOL, **options: Any) -> AsyncEngine:
    """An async engine for a plain or driver URL, set up for its dialect; `options` go to SQLAlchemy."""
    url = normalize_url(url)
    if url.startswith("postgresql"):
        options = {**postgres_pool, **options}
    engine = create_async_engine(url, **options)
    configure(engine)
    return engine
