"""The live set's memory budget (`limits.max_live_memory_mb`): past it, the sweep evicts the least recently used
idle sessions until the rest fit, and an evicted session comes back whole."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.actors.session import SessionActor
from aomi_runtime.agent.apps import AppSpec, Limits
from tests.actors.test_runtime import chat, directory_stats, idle, namespace, state
from tests.helpers import holders


async def blank_actor_mb() -> float:
    """The private memory of a blank session actor of the default App, measured here (about 74 MB on Linux x86_64
    with Ray 2.60; a session adds little to it)."""
    actor = SessionActor.remote(AppSpec(name="default"), None, {})  # type: ignore[attr-defined]  # @ray.remote made an ActorClass
    try:
        stats: dict[str, Any] = await actor.stats.remote()
    finally:
        ray.kill(actor, no_restart=True)
    return int(stats["private_bytes"]) / (1 << 20)


@pytest.fixture
async def runtime(ray_instance: None, tmp_path: Path) -> AsyncIterator[Runtime]:
    # Two and a half blank actors: three sessions (an actor each) are over the budget, two fit.
    budget_mb = int(2.5 * await blank_actor_mb())
    spec = AppSpec(name="default", limits=Limits(max_live_memory_mb=budget_mb))
    made = Runtime([spec], f"sqlite:///{tmp_path / 'budget.db'}", f"aomi-t{uuid.uuid4().hex[:10]}")
    yield made
    await made.stop()


async def private_bytes(runtime: Runtime, session_id: str) -> int:
    """The memory the directory counts for a live session: its actor's own, as the actor reports it."""
    (worker,) = holders(namespace(runtime), session_id)
    stats: dict[str, Any] = await worker.stats.remote()  # type: ignore[attr-defined]
    return int(stats["private_bytes"])


async def test_past_the_memory_budget_the_least_recently_used_go_until_the_rest_fit(runtime: Runtime) -> None:
    budget = (runtime.app("default").spec.limits.max_live_memory_mb or 0) << 20
    sessions = [str(uuid.uuid4()) for _ in range(3)]  # from the least to the most recently used
    snapshots = {}
    for s in sessions:
        await chat(runtime, s, f"hello from {s[:8]}")
        snapshots[s] = await idle(runtime, s)
    sizes = {s: await private_bytes(runtime, s) for s in sessions}
    assert sum(sizes.values()) > budget, f"the budget is not exceeded, so nothing would be evicted: {sizes}"

    await runtime.sweep()  # (the directory's own sweep, every 30 s, may have come first: the outcome is the same)

    evicted = [s for s in sessions if holders(namespace(runtime), s) == []]
    kept = [s for s in sessions if s not in evicted]
    assert evicted, f"nothing evicted, with {sum(sizes.values()) >> 20} MB live over a budget of {budget >> 20} MB"
    assert evicted == sessions[: len(evicted)], f"not the least recently used: {evicted} of {sessions}"
    assert sum(sizes[s] for s in kept) <= budget, "what is left does not fit the budget"
    assert sum(sizes[s] for s in kept) + sizes[evicted[-1]] > budget, "more evicted than the budget asked"
    stats = await directory_stats(runtime)
    assert stats["evicted"] == len(evicted) and stats["live"] == len(kept)

    for s in evicted:  # back through the database, whole
        assert await state(runtime, s) == snapshots[s]
    assert (await directory_stats(runtime))["loaded"] == len(evicted)
    for s in kept:
        assert await state(runtime, s) == snapshots[s]
