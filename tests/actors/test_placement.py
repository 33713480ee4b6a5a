"""Session actors on a cluster: a session that no node can place fails in time, and warm actors lost with their
node are passed over. (Sessions spread over real nodes and brought up by the autoscaler: `tests/cluster/`.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.directory import WORKER_PREFIX, named_actors
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec
from aomi_runtime.agent.errors import NoCapacity
from tests.helpers import eventually


@pytest.fixture
async def runtimes(ray_instance: None, tmp_path: Path) -> AsyncIterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made:
        await runtime.stop()


def start(made: list[Runtime], tmp_path: Path, placement: SessionPlacement | None = None) -> Runtime:
    runtime = Runtime(
        [AppSpec(name="default")],
        f"sqlite:///{tmp_path / 'placement.db'}",
        f"aomi-p{uuid.uuid4().hex[:10]}",
        placement=placement,
    )
    made.append(runtime)
    return runtime


async def chat(runtime: Runtime, session_id: str) -> dict[str, Any]:
    return dict(
        json.loads(
            await runtime.chat(session_id, "hello", app=runtime.app("default"), user_state=None, public_key=None)
        )
    )


async def test_a_session_no_node_can_place_fails_in_time_and_leaves_nothing_behind(
    runtimes: list[Runtime], tmp_path: Path
) -> None:
    # No node of the test instance declares this resource: as on a cluster at its largest, with every slot taken.
    runtime = start(runtimes, tmp_path, SessionPlacement({"aomi_session_nowhere": 1}, timeout_seconds=1.0))
    s = str(uuid.uuid4())
    with pytest.raises(NoCapacity, match="No node had room for another session of the App 'default'"):
        await chat(runtime, s)
    assert await runtime.owner(s) is None  # nothing stored: the request can simply be sent again
    ns = runtime.app("default").namespace

    async def no_actor_left() -> bool:  # the pending ones (this request's, the warm pool's) were cancelled
        return named_actors(ns, WORKER_PREFIX) == []

    await eventually(no_actor_left, timeout=15)


async def test_warm_actors_lost_with_their_node_are_passed_over(runtimes: list[Runtime], tmp_path: Path) -> None:
    runtime = start(runtimes, tmp_path)
    directory = runtime.app("default").directory

    async def pool_full() -> bool:
        return bool((await directory.stats.remote())["warm"] == 2)

    await runtime.sweep()  # the directory starts, and fills its pool
    await eventually(pool_full, timeout=20)
    warm = named_actors(runtime.app("default").namespace, WORKER_PREFIX)
    assert len(warm) == 2
    for worker in warm:  # as a node removed with them would
        ray.kill(worker, no_restart=True)
    s = str(uuid.uuid4())
    assert (await chat(runtime, s))["messages"][0]["content"] == "hello"  # a new actor, not an error
    assert (await directory.stats.remote())["created"] == 1
