"""An App's directory across versions (actors/versions.py), on a real Ray: restarted by Ray after a deploy changed
the placement, it runs the newest version as deployed (not the newest version's name with the first deploy's
placement); a delete during the drain's look at a session that runs stops it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec
from tests.helpers import eventually, holders


@pytest.fixture
async def runtimes(ray_instance: None) -> AsyncIterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made:  # the first stops every actor of the namespace; the others close what is their own
        await runtime.stop()


async def test_a_restarted_directory_keeps_the_newest_versions_placement(
    runtimes: list[Runtime], tmp_path: Path
) -> None:
    spec = AppSpec(name="default")
    database_url = f"sqlite:///{tmp_path / 'versions.db'}"
    namespace = f"aomi-t{uuid.uuid4().hex[:10]}"

    def deploy(sessions_per_actor: int) -> Runtime:
        placement = SessionPlacement(sessions_per_actor=sessions_per_actor)
        runtime = Runtime([spec], database_url, namespace, placement=placement, deployed_at=time.time())
        runtimes.append(runtime)
        return runtime

    first = deploy(1)
    assert await first.chat(str(uuid.uuid4()), "hello", app=first.app("default"), user_state=None, public_key=None)
    directory = first.app("default").directory

    async def stats() -> dict[str, Any]:
        found: dict[str, Any] = await directory.stats.remote()
        return found

    first_version = (await stats())["version"]
    second = deploy(3)  # a new version: three sessions an actor

    async def settled(restarted: bool = False) -> dict[str, Any] | None:
        now = await stats()
        if restarted and now["misses"]:  # ray.kill returns at once: a call may still reach the killed process
            return None
        return now if now["version"] != first_version and now["old_actors"] == 0 and now["warm"] >= 1 else None

    # Timeouts for a loaded machine: a new actor's process may take seconds to start.
    deployed = await eventually(settled, timeout=90, interval=0.2)
    s = str(uuid.uuid4())
    await second.chat(s, "hello", app=second.app("default"), user_state=None, public_key=None)

    ray.kill(directory, no_restart=False)
    restarted = await eventually(lambda: settled(restarted=True), timeout=90, interval=0.2)
    assert restarted["version"] == deployed["version"]
    # The live set's bound follows the actors' capacity: the first deploy's (1) would make it a third.
    assert restarted["max_live"] == deployed["max_live"]
    # The actor it found holds three sessions as its version says, two of them free: the warm floor (two places)
    # needs no new actor. Taken as holding one, it would be full, and a new actor started beside it.
    assert (restarted["actors"], restarted["warm"]) == (1, 2)


async def test_a_session_deleted_while_the_drain_looks_at_it_is_gone(runtimes: list[Runtime], tmp_path: Path) -> None:
    """The drain's release of a session that runs (refused: it finishes on its old actor) takes it out of the live
    set for a moment; a delete in that moment must not find it absent, delete its rows and leave it running."""
    database_url = f"sqlite:///{tmp_path / 'versions.db'}"
    namespace = f"aomi-t{uuid.uuid4().hex[:10]}"
    specs = [AppSpec(name="default")]
    old = Runtime(specs, database_url, namespace, deployed_at=time.time())
    runtimes.append(old)
    s = str(uuid.uuid4())
    await old.chat(
        s, '/tool long_task {"steps": 1200, "pause": 0.05}', app=old.app("default"), user_state=None, public_key=None
    )
    runtimes.append(Runtime(specs, database_url, namespace, deployed_at=time.time(), version_label="2"))
    directory = old.app("default").directory

    async def draining() -> bool:
        return bool((await directory.stats.remote())["old_actors"])

    await eventually(draining, timeout=30)  # the session runs on (a minute): its old actor drains
    # Each lookup asks its old actor to let it go (refused while it runs): lookups in a crowd keep it so.
    lookups = [directory.get.remote(s, False) for _ in range(200)]
    deleted = directory.delete.remote(s)
    assert await deleted
    await asyncio.gather(*lookups)
    assert holders(app_namespace(namespace, "default"), s) == [], "a deleted session still runs"
