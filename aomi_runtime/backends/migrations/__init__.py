"""The schema as Alembic migrations (`versions/`), and how the stores and `aomi-runtime db` run them.

Each SQL store (history, keys, secrets) brings its database to the head revision before its first use, or, with
`migrate` off, refuses one behind it. An upgrade runs in one transaction under a lock that serialises processes
starting together: PostgreSQL's transaction-level advisory lock; SQLite's write lock, taken by `BEGIN IMMEDIATE`
(waiting out the busy timeout). Alembic manages no transaction on a connection already in one, so the lock holds
from the revision's check to the new revision's row (in `aomi_alembic_version`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...agent.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).parent
DDL_LOCK_KEY = 0x616F6D69  # "aomi": serialises schema changes on PostgreSQL (the key 0.1.0's create_all took)
# The tables of the baseline: a database holding some of them and no revision was made before migrations.
BASELINE_TABLES = frozenset({"aomi_sessions", "aomi_messages", "aomi_events", "aomi_keys", "aomi_secrets"})
UPGRADE_COMMAND = "aomi-runtime db upgrade"
# The scripts' head: a store at it reads one row and loads no Alembic (with Mako, ~80 ms and ~9 MB a store actor).
# A new migration moves it (tests/backends/test_migration_costs.py checks).
HEAD = "0001"
# The revision's table: of our own name, so that a database shared with another Alembic project keeps both apart.
VERSION_TABLE = "aomi_alembic_version"

log = logging.getLogger(__name__)


def _without_guesses(record: logging.LogRecord) -> bool:
    """Alembic's log keeps "Running upgrade A -> B", not its guess about transactions: it runs in ours, which makes
    SQLite's DDL transactional too."""
    return not str(record.msg).startswith(("Context impl", "Will assume"))


# Set where Alembic is first used, before it logs: its plugins' set-up (a line each), and its guesses.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.migration").addFilter(_without_guesses)


@dataclass(frozen=True)
class Revision:
    """Where a database stands: its revision (None: none stamped) and this version's head."""

    current: str | None
    head: str
    made_before_migrations: bool = False  # tables of 0.1.0, no revision: adopted at the baseline by an upgrade

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        if self.at_head:
            return f"{self.current} (at head)"
        if self.current is None:
            state = "made before migrations" if self.made_before_migrations else "empty"
            return f"none ({state}; head is {self.head})"
        known = "behind" if _known(self.current) else "unknown to this version (a newer one upgraded it?);"
        return f"{self.current} ({known} head {self.head})"


def package_metadata() -> list[MetaData]:
    """The tables the package's code uses, which the head revision makes (what autogenerate compares)."""
    from .. import keys, secrets
    from ..history import sql

    return [sql.metadata, keys.metadata, secrets.metadata]


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()  # no alembic.ini: the scripts are the package's own
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """This version's head revision, known without loading Alembic (tests check it is the scripts' head)."""
    return HEAD


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _read(conn: Connection) -> Revision:
    # Alembic's own read (MigrationContext.get_current_revision), in plain SQL: it would load Alembic in every store.
    found = inspect(conn)
    stamped = found.has_table(VERSION_TABLE)
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() if stamped else []
    if len(rows) > 1:
        raise StorageError(f"The database has {len(rows)} revisions in {VERSION_TABLE}: branches this version lacks.")
    current = rows[0] if rows else None
    made_before = current is None and bool(BASELINE_TABLES & set(found.get_table_names()))
    return Revision(current, head(), made_before)


async def revision(engine: AsyncEngine) -> Revision:
    """The database's revision, read without a lock."""
    async with engine.connect() as conn:
        return await conn.run_sync(_read)


@asynccontextmanager
async def _write_locked(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that holds the schema lock; committed on leaving, rolled back on an error."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            async with conn.begin():
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
                yield conn
            return
        # SQLite's driver begins a transaction lazily, before the first INSERT or UPDATE, never for a CREATE: two
        # processes' checks and CREATEs would interleave. BEGIN IMMEDIATE takes the write lock first.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


def _upgrade(conn: Connection, to: str) -> Revision:
    from alembic import command

    found = _read(conn)  # again, under the lock: another process may have upgraded since
    if _newer(found):
        raise StorageError(behind(found))
    if found.made_before_migrations:
        log.info("Adopting a database made before migrations at the baseline revision, then upgrading to %s.", to)
    command.upgrade(_config(conn), to)
    return found


async def upgrade(engine: AsyncEngine, to: str = "head") -> tuple[Revision, Revision]:
    """Upgrade the database to `to` (a revision, default the head) under the schema lock; the revisions before and
    after. Raises `StorageError` for a revision this version does not know."""
    async with _write_locked(engine) as conn:
        before = await conn.run_sync(_upgrade, to)
        after = await conn.run_sync(_read)
    return before, after


def open_database(url: str) -> AsyncEngine:
    """An engine for `aomi-runtime db`, on the database a URL names (one connection at a time)."""
    from ..history import _dialects  # here: the history package imports this one

    return _dialects.open_engine(url, postgres_pool={"pool_size": 1, "max_overflow": 0})


def _private(engine: AsyncEngine) -> bool:
    """An in-memory SQLite of one process (keys and secrets without a database): made here, nothing to keep."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


async def prepare(engine: AsyncEngine, *, migrate: bool) -> None:
    """What each store does before its first use: upgrade to the head, or (`migrate` off) refuse a database behind
    it, with a `StorageError` naming the command that upgrades it."""
    if _private(engine):
        # Nothing to keep, no other process: the head's tables (the same, tests show), with no Alembic loaded.
        async with engine.begin() as conn:
            for metadata in package_metadata():
                await conn.run_sync(metadata.create_all)
        return
    found = await revision(engine)
    if found.at_head:
        return
    if not migrate or _newer(found):  # a newer version's: refused before the lock, which each call would take
        raise StorageError(behind(found))
    await upgrade(engine)


def _newer(found: Revision) -> bool:
    return found.current is not None and not _known(found.current)


def behind(found: Revision) -> str:
    """Why a database not at the head is refused (a newer version's revision, or upgrading on start off), and what
    to do."""
    if _newer(found):
        return (
            f"The database is at revision {found.current!r}, which this version of aomi-runtime does not know "
            "(a newer version upgraded it); run that version, or one at least as new."
        )
    return (
        f"The database's schema is at revision {found.describe()}, and upgrading on start is off "
        f"(AOMI_MIGRATE_ON_START=false): run `{UPGRADE_COMMAND}` with the runtime's settings first."
    )


class Schema:
    """Prepares an engine's database once, whoever asks first (idempotent, lock-guarded in the process too)."""

    def __init__(self, engine: AsyncEngine, *, migrate: bool = True) -> None:
        self._engine = engine
        self._migrate = migrate
        self._lock = asyncio.Lock()
        self._ready = False

    async def prepare(self) -> None:
        async with self._lock:
            if not self._ready:
                await prepare(self._engine, migrate=self._migrate)
                self._ready = True
