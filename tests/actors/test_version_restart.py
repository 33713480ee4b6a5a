"""A directory restarted by Ray after a deploy changed the App's placement (actors/versions.py): Ray gives it the
spec and placement it was first started with, and it must run the newest version as deployed, not a mix of the
newest version's name with the first deploy's placement."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec
from tests.helpers import eventually


@pytest.fixture
async def runtimes(ray_instance: None) -> AsyncIterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made[:1]:  # one namespace: the first stops every actor in it
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
