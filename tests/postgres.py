"""A fresh PostgreSQL database for a test run, on the local server (or `AOMI_TEST_POSTGRES_URL`).

Without a server the tests that need one skip, saying why; with `AOMI_REQUIRE_POSTGRES=1` (set by `.ci/run` where
PostgreSQL is installed) they fail instead, so CI cannot lose them in silence."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import asyncpg
import pytest

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUIRE_ENV = "AOMI_REQUIRE_POSTGRES"


def server_url() -> str:
    return os.environ.get("AOMI_TEST_POSTGRES_URL", DEFAULT_SERVER_URL)


def required() -> bool:
    """Whether this run was told a PostgreSQL server is there (`AOMI_REQUIRE_POSTGRES=1`)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(server_url(), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    # In a thread of its own: the caller may be inside a running event loop (an async fixture).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _execute(sql)).result()


def unreachable(exc: BaseException) -> str:
    """Why the tests that need PostgreSQL cannot have it."""
    return f"PostgreSQL is not reachable at {server_url()} ({type(exc).__name__}: {exc}); set AOMI_TEST_POSTGRES_URL"


@contextmanager
def postgres_database() -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards. Without a server: skips, saying why, or fails
    if `AOMI_REQUIRE_POSTGRES` says the server should be there."""
    name = f"aomi_test_{uuid.uuid4().hex[:12]}"
    why = None
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        why = unreachable(exc)
    if why is not None:  # out of the `except`: the failure below reads as one line, not a chained traceback
        if required():
            pytest.fail(f"{REQUIRE_ENV}={os.environ[REQUIRE_ENV]}, but {why}", pytrace=False)
        pytest.skip(why)
    try:
        yield server_url().rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
