"""What the schema step costs a store actor that has nothing to upgrade: no Alembic (about 80 ms and 9 MB a process,
with Mako) on a database at the head, nor for the keys and secrets a process keeps in memory (`memory://`, a
custom backend). Read in a fresh process, since this one has loaded Alembic; and the head the stores compare with
is the scripts' own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from aomi_runtime.backends import migrations
from tests.backends.test_migrations import engine_of

ROOT = Path(__file__).resolve().parents[2]

STORE_STARTS = """
import asyncio, sys
from aomi_runtime.backends.history import open_history
from aomi_runtime.backends.keys import SqlKeys
from aomi_runtime.backends.secrets import SqlSecrets

async def start(url):
    history, keys = open_history(url), SqlKeys.from_url(url)
    in_memory = [open_history("memory://"), SqlKeys.from_url("memory://"), SqlSecrets.open("memory://", None)]
    await history.setup()
    await keys.setup()
    for store in in_memory[:2]:
        await store.setup()
    assert await keys.list() == [] and await in_memory[1].list() == []
    assert await in_memory[2].describe("app", "client") == []
    for store in (history, keys, *in_memory):
        await store.close()

asyncio.run(start(sys.argv[1]))
print(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako"}))
"""


def test_a_store_at_head_and_one_in_memory_load_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'at_head.db'}"

    async def upgrade() -> None:
        async with engine_of(url) as engine:
            await migrations.upgrade(engine)

    asyncio.run(upgrade())
    run = subprocess.run(
        [sys.executable, "-c", STORE_STARTS, url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "[]\n"


def test_the_head_the_stores_compare_with_is_the_scripts() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrations._config())
    assert scripts.get_heads() == [migrations.HEAD]
