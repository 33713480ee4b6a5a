"""Copies of snapshots in the ingress replicas (actors/snapshot_copies.py, actors/readers.py): a session at rest is
read without the hop to its actor, and a client reads its own writes through any replica. Two `Runtime`s on one
namespace are two replicas of one runtime: each keeps copies of its own, of the same session actors."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.event_streams import events_after
from aomi_runtime.actors.readers import HEARTBEAT_SECONDS, LEASE_SECONDS
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec, Limits
from tests.helpers import eventually, holders

Pair = tuple[Runtime, Runtime]


@pytest.fixture(params=[1, 4], ids=["actor-per-session", "4-per-actor"])
async def pair(request: pytest.FixtureRequest, ray_instance: None, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two replicas of one runtime, with an actor per session or four sessions to an actor."""
    spec = AppSpec(name="default", limits=Limits(sessions_per_actor=request.param))
    namespace = f"aomi-t{uuid.uuid4().hex[:10]}"
    url = f"sqlite:///{tmp_path / 'copies.db'}"
    one, two = Runtime([spec], url, namespace), Runtime([spec], url, namespace)
    try:
        yield one, two
    finally:
        await one.stop()  # the session actors first: they drop the copies both replicas hold
        two.copies.close()


async def read(runtime: Runtime, session_id: str, client_id: str | None = None) -> dict[str, Any]:
    return dict(json.loads((await runtime.read_state(session_id, client_id)).body))


async def at_rest(runtime: Runtime, session_id: str) -> dict[str, Any]:
    """The session once its turn and its title are done (a snapshot read at rest is one a replica keeps)."""

    async def check() -> dict[str, Any] | None:
        snap = json.loads(await runtime.call(session_id, "state", None))
        return None if snap["is_processing"] or snap["title"] == "New Chat" else snap

    return await eventually(check, timeout=30)


async def chat(runtime: Runtime, session_id: str, text: str) -> None:
    await runtime.chat(session_id, text, app=runtime.app("default"), user_state=None, public_key=None)


async def cached(runtime: Runtime, session_id: str) -> dict[str, Any]:
    """Read until this replica's copy answers (a first copy is handed out once the directory knows copies of the
    session may be out), and check it equals the read before it."""
    before = await read(runtime, session_id)
    for _ in range(10):
        await asyncio.sleep(0.05)  # the actor tells the directory first: a copy is handed out once it knows
        hits = runtime.copies.counts["hits"]
        snap = await read(runtime, session_id)
        assert snap == before
        if runtime.copies.counts["hits"] == hits + 1:
            return snap
    raise AssertionError("reads at rest kept going to the session")


async def resting_copy(maker: Runtime, holder: Runtime) -> str:
    """A new session, at rest after one turn, of which `holder` keeps a copy."""
    s = str(uuid.uuid4())
    await chat(maker, s, "hi")
    await at_rest(maker, s)
    await cached(holder, s)
    return s


@pytest.mark.parametrize("pair", [1], indirect=True, ids=["actor-per-session"])  # the shape plays no part
async def test_a_session_at_rest_is_read_from_the_replicas_copy(pair: Pair) -> None:
    one, _ = pair
    s = str(uuid.uuid4())
    await chat(one, s, "hi")
    rest = await at_rest(one, s)
    snap = await cached(one, s)
    assert snap == rest and snap["messages"][-1]["content"] == 'You said: "hi"'
    copy = await one.read_state(s)
    hits = one.copies.counts["hits"]
    for _ in range(20):
        assert (await one.read_state(s)).etag == copy.etag
    assert one.copies.counts["hits"] == hits + 20


@pytest.mark.parametrize("pair", [1], indirect=True, ids=["actor-per-session"])  # the shape plays no part
async def test_reads_during_a_turn_go_to_the_session(pair: Pair) -> None:
    one, _ = pair
    s = await resting_copy(one, one)
    await chat(one, s, '/tool long_task {"steps": 3}')
    misses = one.copies.counts["misses"]
    seen = await read(one, s)
    assert seen["is_processing"] and one.copies.counts["misses"] == misses + 1
    while seen["is_processing"]:
        seen = await read(one, s)
    assert seen["messages"][-1]["content"].startswith("The long_task tool returned")
    assert one.copies.counts["hits"] == 1, "a copy was served while the turn ran"


async def test_a_client_reads_its_own_writes_through_either_replica(pair: Pair) -> None:
    """Writes through one replica, reads through the other, alternating, each replica holding a copy of the
    session before each write: every read shows the write acknowledged just before it."""
    one, two = pair
    s = str(uuid.uuid4())
    await chat(one, s, "hi")
    await at_rest(one, s)
    for i in range(6):
        writer, reader = (one, two) if i % 2 == 0 else (two, one)
        await cached(reader, s)
        await cached(writer, s)
        await writer.call(s, "rename", f"title {i}")
        assert (await read(reader, s))["title"] == f"title {i}"
        assert (await read(writer, s))["title"] == f"title {i}"
        await writer.call(s, "post_system", f"notice {i}")  # handed out by the next read, once
        events = (await read(reader, s))["system_events"]
        assert [e["SystemNotice"] for e in events] == [f"notice {i}"]
        assert (await read(writer, s))["system_events"] == []
        await writer.call(s, "state", {"step": i})
        assert (await read(reader, s))["user_state"] == {"step": i}
        await chat(writer, s, f"message {i}")
        assert f"message {i}" in [m["content"] for m in (await read(reader, s))["messages"]]
        await at_rest(writer, s)
    assert one.copies.counts["hits"] >= 6 and two.copies.counts["hits"] >= 6


async def test_an_event_seen_on_a_stream_is_in_any_snapshot_read_after_it(pair: Pair) -> None:
    one, two = pair
    s = str(uuid.uuid4())
    await chat(one, s, "hi")
    last = (await at_rest(one, s))["last_event_id"]
    await cached(two, s)
    waiting = asyncio.create_task(events_after(one, s, last, 10))
    await asyncio.sleep(0.2)  # the stream waits in the session before the rename
    renamed = asyncio.create_task(one.call(s, "rename", "seen on the stream"))
    events = await waiting
    assert [e.data["type"] for e in events] == ["title_changed"]
    assert (await read(two, s))["title"] == "seen on the stream"  # read as soon as the event is seen
    await renamed


@pytest.mark.parametrize("pair", [1], indirect=True, ids=["actor-per-session"])  # the shape plays no part
async def test_a_read_naming_a_client_binds_it_through_the_session(pair: Pair) -> None:
    one, two = pair
    s = await resting_copy(one, two)
    misses = two.copies.counts["misses"]
    await read(two, s, client_id="client-a")  # the session is bound to none: this read binds it
    assert two.copies.counts["misses"] == misses + 1
    await read(two, s, client_id="client-a")
    hits = two.copies.counts["hits"]
    await read(two, s, client_id="client-b")  # bound already: changes nothing, the copy answers
    assert two.copies.counts["hits"] == hits + 1
    stored = await one.app("default").store.get.remote("default", s)
    assert stored.client_id == "client-a"


async def test_copies_of_a_killed_actor_are_not_served(pair: Pair) -> None:
    one, two = pair
    s = await resting_copy(one, two)
    namespace = one.app("default").namespace
    [actor] = holders(namespace, s)
    ray.kill(actor, no_restart=True)
    await one.call(s, "rename", "after the kill")  # found again, in another actor
    assert (await read(two, s))["title"] == "after the kill"


async def test_only_a_session_with_copies_out_holds_back_commits_when_its_actor_is_lost(pair: Pair) -> None:
    one, two = pair
    copied = await resting_copy(one, two)
    plain = str(uuid.uuid4())
    await chat(one, plain, "hi")
    await at_rest(one, plain)  # read through the session's `state`: no copy handed out
    namespace = one.app("default").namespace
    for actor in {*holders(namespace, copied), *holders(namespace, plain)}:
        ray.kill(actor, no_restart=True)
    await one.call(plain, "state", None)  # live again, in a new actor: the commit alone is timed (a loaded machine
    started = time.monotonic()  # may take seconds to start an actor)
    await one.call(plain, "rename", "no fence")
    assert time.monotonic() - started < LEASE_SECONDS - HEARTBEAT_SECONDS
    started = time.monotonic()
    await one.call(copied, "rename", "fenced")
    assert time.monotonic() - started > LEASE_SECONDS - HEARTBEAT_SECONDS - 1
    assert (await read(two, copied))["title"] == "fenced"


@pytest.mark.parametrize("pair", [1], indirect=True, ids=["actor-per-session"])  # the shape plays no part
async def test_a_replica_gone_silent_holds_a_commit_no_longer_than_its_lease(pair: Pair) -> None:
    """A replica that stops asking (hung, or gone without a word) is waited for until its lease runs out: after
    that it serves no copy by its own rule, and the commit goes on."""
    one, two = pair
    s = await resting_copy(one, two)
    two.copies.close()  # stops its polls, tells nothing
    started = time.monotonic()
    await one.call(s, "rename", "waited for the lease")
    waited = time.monotonic() - started
    assert LEASE_SECONDS - HEARTBEAT_SECONDS - 1 < waited <= LEASE_SECONDS + 2, waited
    started = time.monotonic()
    await one.call(s, "rename", "forgotten")
    assert time.monotonic() - started < 1.0  # the silent replica is forgotten: no second wait


async def test_reads_from_copies_keep_a_session_from_idle_eviction(ray_instance: None, tmp_path: Path) -> None:
    spec = AppSpec(name="default", limits=Limits(idle_seconds=4))
    runtime = Runtime([spec], f"sqlite:///{tmp_path / 'idle.db'}", f"aomi-t{uuid.uuid4().hex[:10]}")
    try:
        read_often, left_alone = str(uuid.uuid4()), str(uuid.uuid4())
        for s in (read_often, left_alone):
            await chat(runtime, s, "hi")
            await at_rest(runtime, s)
        await cached(runtime, read_often)
        deadline = time.monotonic() + 6  # reads are reported with each poll (2 s)
        while time.monotonic() < deadline:
            await read(runtime, read_often)
            await asyncio.sleep(0.2)
        await runtime.sweep()
        live = holders(runtime.app("default").namespace, read_often)
        assert live, "a session read every 0.2 s from a copy was evicted as idle"
        assert not holders(runtime.app("default").namespace, left_alone)
    finally:
        await runtime.stop()
