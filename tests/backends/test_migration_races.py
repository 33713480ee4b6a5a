"""Processes starting on one database at once (real OS processes, released together): each upgrades it or finds it
upgraded, none fails, and the database ends at the head with one revision row and every table, on SQLite and
PostgreSQL. Without the schema lock this fails (two revision rows, or a CREATE of a table another just made)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from aomi_runtime.backends import migrations
from aomi_runtime.backends.history._dialects import open_engine
from tests.backends.test_migrations import fresh_database

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
ROUNDS = 3


def start_together(url: str) -> list[tuple[int, str, str]]:
    """Start `PROCESSES` workers on `url`, release them at once when all are ready; their exit codes and output."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.backends.migrate_worker", url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        return [(w.wait(timeout=120), *w.communicate()) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


async def state_of(url: str) -> tuple[list[str], list[str]]:
    engine = open_engine(url)
    try:
        async with engine.connect() as conn:
            versions = list((await conn.execute(text("SELECT version_num FROM aomi_alembic_version"))).scalars())
            tables = await conn.run_sync(lambda c: sorted(inspect(c).get_table_names()))
        return versions, tables
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_starting_together_on_one_database(kind: str, tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        with fresh_database(kind, tmp_path, f"race{round_}") as url:
            results = start_together(url)
            failed = [err[-2000:] for code, _, err in results if code != 0]
            assert not failed, f"round {round_}: {len(failed)} of {PROCESSES} failed:\n" + "\n".join(failed)
            assert all(out == "ok\n" for _, out, _ in results)
            versions, tables = asyncio.run(state_of(url))
            assert versions == [migrations.head()], f"round {round_}"
            assert tables == sorted({migrations.VERSION_TABLE, *migrations.BASELINE_TABLES})
