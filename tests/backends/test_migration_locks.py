"""The schema lock holds from an upgrade's first statement to its commit, on real SQLite and PostgreSQL: after every
statement the upgrade sends, another connection tries, without waiting, what another process's upgrade would take
first (SQLite: any write, so BEGIN IMMEDIATE and not a deferred BEGIN; PostgreSQL: the advisory lock), and is
refused; once the upgrade has committed, it is let in."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from aomi_runtime.backends import migrations
from tests.backends.test_migrations import engine_of, fresh_database


def sqlite_writer(url: str) -> Callable[[], bool]:
    """Whether another connection may write the file now (no busy wait: refused at once while locked)."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE another_apps_rows (x INTEGER)")

    def write() -> bool:
        other = sqlite3.connect(path, timeout=0)
        try:
            other.execute("INSERT INTO another_apps_rows VALUES (1)")
            other.commit()
            return True
        except sqlite3.OperationalError as exc:
            assert "database is locked" in str(exc)
            return False
        finally:
            other.close()

    return write


def postgres_locker(conn: asyncpg.Connection) -> Callable[[], bool]:
    """Whether another connection may take the schema's advisory lock now (taken and let go in one statement)."""

    def take() -> bool:
        query = "SELECT pg_try_advisory_xact_lock($1)"
        return bool(await_only(conn.fetchval(query, migrations.DDL_LOCK_KEY)))  # in the upgrade's greenlet

    return take


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_an_upgrade_holds_the_lock_from_its_first_statement_to_its_commit(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        other = await asyncpg.connect(url) if kind == "postgres" else None
        try:
            let_in = postgres_locker(other) if other is not None else sqlite_writer(url)
            async with engine_of(url) as engine:
                tried: list[tuple[str, bool]] = []

                def _try_meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
                    tried.append((" ".join(statement.split()[:3]), let_in()))

                event.listen(engine.sync_engine, "after_cursor_execute", _try_meanwhile)
                await migrations.upgrade(engine)
                event.remove(engine.sync_engine, "after_cursor_execute", _try_meanwhile)
                assert (await migrations.revision(engine)).at_head
                assert any(s.startswith("CREATE TABLE") for s, _ in tried), tried
                assert [s for s, allowed in tried if allowed] == [], tried
                async with engine.connect() as conn:  # committed: let go (asked where the probe runs, in a greenlet)
                    assert await conn.run_sync(lambda _: let_in())
        finally:
            if other is not None:
                await other.close()
