"""A process starting on a database, as a runtime's store does: `python -m tests.backends.migrate_worker URL`.

It imports all it needs, says `ready`, waits for a line on stdin (so that several start their schema step
together), then sets up the history and key stores (the upgrade to the head) and says `ok`."""

from __future__ import annotations

import asyncio
import sys

from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.backends.keys import SqlKeys


async def start(url: str) -> None:
    history, keys = SqlHistory.from_url(url), SqlKeys.from_url(url)
    try:
        await history.setup()
        await keys.setup()
    finally:
        await history.close()
        await keys.close()


if __name__ == "__main__":
    from alembic import command  # noqa: F401  (loaded before the gate: the race is the schema step's, not imports')
    from alembic.script import ScriptDirectory

    from aomi_runtime.backends import migrations

    ScriptDirectory.from_config(migrations._config()).get_current_head()  # the scripts read, likewise
    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(start(sys.argv[1]))
    print("ok", flush=True)
