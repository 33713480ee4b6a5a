"""Sessions packed in session actors (issue 13): many sessions of one actor running turns at once, each seeing
only its own events; an actor SIGKILLed with its sessions mid-turn; eviction per session inside an actor; racing
first requests; a slow or stuck sync tool beside other sessions; empty actors stopped; stale handles."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError

from aomi_runtime.actors.directory import WORKER_PREFIX, named_actors
from aomi_runtime.actors.event_streams import events_after
from aomi_runtime.actors.hosts import actor_key
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec, Limits
from aomi_runtime.agent.errors import SessionClosed
from aomi_runtime.agent.records import Event
from aomi_runtime.agent.session import CUT_SHORT
from tests.actors.test_runtime import chat, directory_stats, idle, namespace, state, worker_of
from tests.helpers import eventually, holders

PACKED = 8
SLOW_TOOLS = ("tests.actors.dense_tools:spin", "tests.actors.dense_tools:hang")

Factory = Callable[..., Runtime]


@pytest.fixture
async def make_runtime(ray_instance: None, tmp_path: Path) -> AsyncIterator[Factory]:
    """Runtimes whose one App packs `PACKED` sessions to an actor (with the limits given), each in a namespace of
    its own, on a SQLite file of the test's unless given a database; all stopped afterwards."""
    made: list[Runtime] = []

    def make(database_url: str | None = None, tools: Sequence[str] = (), **limits: Any) -> Runtime:
        spec = AppSpec(
            name="default",
            tools=("time_now", "long_task", *tools),
            limits=Limits(**{"sessions_per_actor": PACKED, **limits}),
        )
        url = database_url or f"sqlite:///{tmp_path / 'dense.db'}"
        runtime = Runtime([spec], url, f"aomi-d{uuid.uuid4().hex[:10]}")
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.stop()


def hosted(runtime: Runtime) -> dict[str, list[str]]:
    """Each running session actor of the runtime's App (by key), with the sessions it hosts."""
    found = {}
    for worker in named_actors(namespace(runtime), WORKER_PREFIX):
        with contextlib.suppress(RayActorError, SessionClosed):  # stopped since it was listed
            found[actor_key(worker)] = ray.get(worker.held.remote())
    return found


async def packed(runtime: Runtime, count: int = PACKED) -> tuple[list[str], Any]:
    """`count` new sessions, made at once, each with one turn done; all hosted by one actor, which is returned.

    Once an actor's free places fall below the warm floor (half its places) a second one is started, a second
    later, and new sessions go to it, the least loaded: on a loaded machine a burst's last sessions may arrive
    after that. Such a split is deleted and the burst made again, a few times."""
    for _ in range(3):
        sessions = [str(uuid.uuid4()) for _ in range(count)]
        await asyncio.gather(*(chat(runtime, s, f"hello from {s[:8]}") for s in sessions))
        await asyncio.gather(*(idle(runtime, s) for s in sessions))
        actors = {actor_key(worker_of(runtime, s)) for s in sessions}
        if len(actors) == 1:
            return sessions, worker_of(runtime, sessions[0])
        await asyncio.gather(*(runtime.delete(s) for s in sessions))
    raise AssertionError(f"{count} sessions made at once never shared one actor; last: {actors}")


async def events_since(runtime: Runtime, session_id: str, after: int) -> list[Event]:
    return [e for e in await runtime.call(session_id, "last_events", 10_000) if e.seq > after]


async def last_seq(runtime: Runtime, session_id: str) -> int:
    return int((await runtime.call(session_id, "last_events", 1))[0].seq)


async def follow(runtime: Runtime, session_id: str, after: int) -> list[Event]:
    """A session's event stream from `after` until its next turn is done."""
    events: list[Event] = []
    while not any(e.type == "processing_done" for e in events):
        events += await events_after(runtime, session_id, events[-1].seq if events else after, 5.0)
    return events


def counted(n: int) -> str:
    return " ".join(str(i) for i in range(1, n + 1))


# --- many sessions in one actor ----------------------------------------------------------------------------


async def test_sessions_of_one_actor_run_turns_at_once_and_each_stream_gets_only_its_own_events(
    make_runtime: Factory,
) -> None:
    runtime = make_runtime()
    sessions, _ = await packed(runtime)
    seen = {s: await last_seq(runtime, s) for s in sessions}
    streams = {s: asyncio.create_task(follow(runtime, s, seen[s])) for s in sessions}
    lengths = {s: 40 + i for i, s in enumerate(sessions)}  # a different answer for each session
    await asyncio.gather(*(chat(runtime, s, f"count to {lengths[s]}") for s in sessions))

    async def all_turning() -> bool:  # each counts for 2 s or more: at some moment all are under way at once
        return all(snap["is_processing"] for snap in await asyncio.gather(*(state(runtime, s) for s in sessions)))

    await eventually(all_turning)
    followed = dict(zip(sessions, await asyncio.wait_for(asyncio.gather(*streams.values()), 60), strict=True))

    for s in sessions:
        for events in (followed[s], await events_since(runtime, s, seen[s])):  # as streamed, and as logged
            assert [e.seq for e in events] == list(range(seen[s] + 1, seen[s] + 1 + len(events)))
            assert {e.data["session_id"] for e in events} == {s}
            said = [(e.data["message"]["sender"], e.data["message"]["content"]) for e in events if e.type == "message"]
            assert said == [("user", f"count to {lengths[s]}"), ("agent", counted(lengths[s]))]
            assert [e.type for e in events if e.type != "message"] == ["processing_started", "processing_done"]
            assert events[0].type == "processing_started" and events[-1].type == "processing_done"
        snap = await state(runtime, s)
        assert not snap["is_processing"]
        assert [(m["sender"], m["content"]) for m in snap["messages"]] == [
            ("user", f"hello from {s[:8]}"),
            ("agent", f'You said: "hello from {s[:8]}"'),
            ("user", f"count to {lengths[s]}"),
            ("agent", counted(lengths[s])),
        ]


# --- faults -----------------------------------------------------------------------------------------


def sigkill(worker: Any) -> None:
    """Kill a session actor's process as the kernel would (no Ray call): its pid from the GCS's actor table."""
    pid = int(ray._private.state.actors(worker._actor_id.hex())["Pid"])
    assert pid > 0 and "SessionActor" in Path(f"/proc/{pid}/cmdline").read_text(), pid
    os.kill(pid, signal.SIGKILL)


async def test_an_actor_killed_with_its_sessions_mid_turn_brings_every_one_back_closed(
    make_runtime: Factory, sql_url: str
) -> None:
    runtime = make_runtime(sql_url)
    sessions, worker = await packed(runtime)
    tool = '/tool long_task {"steps": 100, "pause": 0.05}'  # 5 s: under way in all eight before it ends
    asked = {s: "count to 1000" if i % 2 else tool for i, s in enumerate(sessions)}
    before = {s: [(m["sender"], m["content"]) for m in (await state(runtime, s))["messages"]] for s in sessions}
    await asyncio.gather(*(chat(runtime, s, asked[s]) for s in sessions))

    async def under_way(s: str) -> bool:  # text is streaming, or the tool is reporting progress
        if asked[s] != tool:
            return bool((await state(runtime, s))["messages"][-1]["content"])
        return any(e.type == "tool_update" for e in await runtime.call(s, "last_events", 10))

    await eventually(lambda: _all(under_way(s) for s in sessions))
    sigkill(worker)

    # Each session's next request finds the actor dead, and the session rebuilt from the database.
    snaps = dict(zip(sessions, await asyncio.gather(*(state(runtime, s) for s in sessions)), strict=True))
    # What it had streamed was never acknowledged as a message.
    cut_short = {s: [*before[s], ("user", asked[s]), ("agent", "")] for s in sessions}
    for s in sessions:
        assert not snaps[s]["is_processing"] and not any(m["is_streaming"] for m in snaps[s]["messages"])
        assert [(m["sender"], m["content"]) for m in snaps[s]["messages"]] == cut_short[s]
        assert snaps[s]["system_events"] == [{"SystemError": CUT_SHORT}]
        assert (await runtime.call(s, "last_events", 1))[0].type == "processing_done"

    # The next turns ask the same tool again (or a short question): turns run one at a time, and these run the
    # tool as long, so by their end a run of a cut-short call since the rebuild would show.
    again = {s: tool if asked[s] == tool else "are you back?" for s in sessions}
    await asyncio.gather(*(chat(runtime, s, again[s]) for s in sessions))
    after = dict(zip(sessions, await asyncio.gather(*(idle(runtime, s) for s in sessions)), strict=True))
    for s in sessions:
        said = [(m["sender"], m["content"]) for m in after[s]["messages"]]
        assert said[: len(cut_short[s]) + 1] == [*cut_short[s], ("user", again[s])]
        completed = [e for e in await runtime.call(s, "last_events", 10_000) if e.type == "tool_complete"]
        assert len(completed) == (1 if asked[s] == tool else 0)  # the new turn's: the cut-short call not run again
        if asked[s] != tool:
            assert said[-1] == ("agent", 'You said: "are you back?"')
    back = {actor_key(worker_of(runtime, s)) for s in sessions}  # one live copy each, packed again
    assert len(back) <= 2 and actor_key(worker) not in back, back


async def _all(checks: Any) -> bool:
    return all(await asyncio.gather(*checks))


# --- eviction per session inside an actor ---------------------------------------------------------------


async def test_idle_sessions_leave_their_actor_and_the_busy_or_watched_ones_stay_in_it(make_runtime: Factory) -> None:
    runtime = make_runtime(idle_seconds=0.5)
    sessions, worker = await packed(runtime)
    snaps = {s: await idle(runtime, s) for s in sessions}
    quiet, busy, watched = sessions[:4], sessions[4:6], sessions[6:]
    await asyncio.gather(*(chat(runtime, s, "count to 1000") for s in busy))
    seqs = {s: await last_seq(runtime, s) for s in watched}
    streams = [asyncio.create_task(events_after(runtime, s, seqs[s], 30.0)) for s in watched]  # nothing new comes

    async def all_idle_long_enough() -> bool:
        # What the sweep decides by: every session idle longer than allowed, and only the quiet ones neither
        # busy nor watched (so the others are kept for that, not for their idle time).
        found = (await worker.stats.remote())["sessions"]
        return (
            all(found[s]["idle_seconds"] > 0.5 for s in sessions)
            and [(found[s]["busy"], found[s]["subscribers"]) for s in sessions]
            == [(False, 0)] * 4 + [(True, 0)] * 2 + [(True, 1)] * 2
        )

    await eventually(all_idle_long_enough, timeout=20)
    report = await runtime.sweep()
    assert report["default"]["evicted_idle"] == 4
    left = await worker.held.remote()  # the actor goes on, with the others
    assert sorted(left) == sorted(busy + watched)
    assert all(holders(namespace(runtime), s) == [] for s in quiet)
    assert await state(runtime, quiet[0]) == snaps[quiet[0]]  # back from the database, the same
    for task in streams:
        task.cancel()


async def test_the_least_recently_used_sessions_leave_their_actor_when_too_many_are_live(
    make_runtime: Factory,
) -> None:
    runtime = make_runtime(max_live_sessions=6)
    sessions, worker = await packed(runtime, 6)
    snaps = {s: await idle(runtime, s) for s in reversed(sessions)}  # read last: the first is the most recent
    for i in range(2):
        await chat(runtime, str(uuid.uuid4()), f"newcomer {i}")
    stats = await directory_stats(runtime)
    assert stats["live"] == 6 and stats["evicted"] == 2
    oldest = sessions[-2:]
    assert all(holders(namespace(runtime), s) == [] for s in oldest)
    assert set(sessions[:-2]) <= set(await worker.held.remote())  # the rest stay where they were
    assert await state(runtime, oldest[0]) == snaps[oldest[0]]


async def two_actors_over_the_memory_budget(make_runtime: Factory) -> tuple[Runtime, list[str], list[str]]:
    """A runtime whose memory budget is one and a half actors of PACKED sessions like these (measured first), with
    two actors full of idle sessions: the first actor's the least recently used."""
    probe = make_runtime()
    _, probed = await packed(probe)
    budget_mb = int(1.5 * (await probed.stats.remote())["private_bytes"]) >> 20
    await probe.stop()
    runtime = make_runtime(max_live_memory_mb=budget_mb)
    older, first = await packed(runtime)
    newer, second = await packed(runtime)
    assert actor_key(first) != actor_key(second)
    for s in newer:  # the second actor's sessions used last
        await state(runtime, s)
    return runtime, older, newer


async def test_past_the_memory_budget_the_least_recently_used_actor_is_emptied_and_the_rest_stay(
    make_runtime: Factory,
) -> None:
    runtime, older, newer = await two_actors_over_the_memory_budget(make_runtime)
    snap = await state(runtime, older[0])
    for s in newer:
        await state(runtime, s)
    report = (await runtime.sweep())["default"]
    # A process gives memory back when it stops, not when some of its sessions go: the whole actor is emptied.
    assert report["evicted_memory"] == PACKED and report["evicted_idle"] == 0, report
    assert all(holders(namespace(runtime), s) == [] for s in older)
    assert all(len(holders(namespace(runtime), s)) == 1 for s in newer)
    assert (await runtime.sweep())["default"]["evicted_memory"] == 0  # nothing changed: nothing more goes
    assert await state(runtime, older[0]) == snap  # back from the database, whole


# --- placing sessions -------------------------------------------------------------------------------------


async def test_a_hundred_racing_first_requests_for_one_session_make_one_live_copy(make_runtime: Factory) -> None:
    runtime = make_runtime()
    s = str(uuid.uuid4())
    name = namespace(runtime).rsplit("-", 1)[0]
    replicas = [Runtime(list(a.spec for a in runtime.apps.values()), "unused://", name) for _ in range(5)]
    infos = await asyncio.gather(*(first_request(r, s) for r in replicas for _ in range(20)))
    assert {i.session_id for i in infos} == {s}
    assert len(holders(namespace(runtime), s)) == 1
    assert (await directory_stats(runtime))["created"] == 1


async def first_request(runtime: Runtime, session_id: str) -> Any:
    return await runtime.call(session_id, "info", app=runtime.app("default"), create=True)


async def test_forty_racing_new_sessions_fill_five_actors_none_past_its_places(make_runtime: Factory) -> None:
    runtime = make_runtime()
    name = namespace(runtime).rsplit("-", 1)[0]
    replicas = [Runtime(list(a.spec for a in runtime.apps.values()), "unused://", name) for _ in range(5)]
    sessions = [str(uuid.uuid4()) for _ in range(40)]
    await asyncio.gather(*(first_request(replicas[i % 5], s) for i, s in enumerate(sessions)))
    places = hosted(runtime)
    found = sorted(s for held in places.values() for s in held)
    assert found == sorted(sessions)  # each once
    assert all(len(held) <= PACKED for held in places.values()), places
    filled = [held for held in places.values() if held]
    assert len(filled) in (5, 6), {k: len(v) for k, v in places.items()}  # 6 only if a warm actor came in time


async def test_actors_fill_least_loaded_first_start_none_for_a_burst_that_fits_and_stop_when_empty(
    make_runtime: Factory,
) -> None:
    runtime = make_runtime()
    first, a = await packed(runtime)  # a full actor: another is started, for the free places it keeps
    await eventually(lambda: _stats_are(runtime, actors=2, warm=PACKED))
    actors = set(hosted(runtime))
    burst = [str(uuid.uuid4()) for _ in range(PACKED // 2)]  # fits the free places, down to the warm floor
    await asyncio.gather(*(chat(runtime, s, "hello") for s in burst))
    assert set(hosted(runtime)) == actors  # no actor started for it
    (b,) = {actor_key(worker_of(runtime, s)) for s in burst}
    assert b != actor_key(a)

    for s in first[2:]:  # the first actor now holds fewer sessions than the second
        assert await runtime.delete(s)
    newcomer = str(uuid.uuid4())
    await chat(runtime, newcomer, "hello")
    assert actor_key(worker_of(runtime, newcomer)) == actor_key(a)

    for s in burst:  # the second actor left empty, while the first has free places to make the warm floor
        assert await runtime.delete(s)
    await eventually(lambda: set(hosted(runtime)) == {actor_key(a)})
    assert sorted(await a.held.remote()) == sorted([*first[:2], newcomer])

    for s in [*first[:2], newcomer]:  # the last actor left empty is kept: its places are the warm floor
        assert await runtime.delete(s)
    assert await a.held.remote() == []
    assert await _stats_are(runtime, actors=1, warm=PACKED)


async def _stats_are(runtime: Runtime, **expected: int) -> bool:
    stats = await directory_stats(runtime)
    return all(stats[k] == v for k, v in expected.items())


async def test_a_caller_holding_the_handle_of_an_evicted_session_gets_it_back_and_its_neighbours_are_untouched(
    make_runtime: Factory,
) -> None:
    runtime = make_runtime(max_live_sessions=PACKED)
    sessions, worker = await packed(runtime)
    snaps = {s: await idle(runtime, s) for s in sessions}  # the first is the least recent
    name = namespace(runtime).rsplit("-", 1)[0]
    other = Runtime(list(a.spec for a in runtime.apps.values()), "unused://", name)  # another replica
    newcomer = str(uuid.uuid4())
    await chat(other, newcomer, "one too many")  # evicts the first session, behind this replica's back
    assert await other.delete(newcomer)  # and leaves room for it to come back, with no one else evicted
    evicted, neighbours = sessions[0], sessions[1:]
    assert holders(namespace(runtime), evicted) == []
    assert actor_key(runtime._handles[evicted].handle) == actor_key(worker)  # this replica's handle is stale
    hits = runtime.handle_counts["hits"]

    assert await state(runtime, evicted) == snaps[evicted]
    assert runtime.handle_counts["hits"] == hits + 1  # through the stale handle, then found again
    assert len(holders(namespace(runtime), evicted)) == 1
    assert sorted(s for s in await worker.held.remote() if s != evicted) == sorted(neighbours)
    stats = await directory_stats(runtime)
    assert stats["loaded"] == 1 and stats["evicted"] == 1  # only the evicted one was loaded again
    for s in neighbours:
        assert await state(runtime, s) == snaps[s]


# --- isolation inside an actor -----------------------------------------------------------------------------


async def test_a_cpu_bound_sync_tool_does_not_stall_its_neighbours_reads_or_streams(make_runtime: Factory) -> None:
    runtime = make_runtime(tools=SLOW_TOOLS)
    (spinner, reader, counter), _ = await packed(runtime, 3)
    await chat(runtime, counter, "count to 1000")
    await chat(runtime, spinner, '/tool spin {"seconds": 2}')
    seen: list[tuple[float, int]] = []  # when each read of the others answered, and how far the count was
    while not (await state(runtime, spinner))["messages"][-1]["content"]:  # until the tool's turn answers
        await state(runtime, reader)
        counting = (await state(runtime, counter))["messages"][-1]["content"]
        seen.append((time.time(), len(counting.split())))
    (done,) = [m["tool_result"] for m in (await state(runtime, spinner))["messages"] if m["tool_result"]]
    started, ended = json.loads(done[1])["started"], json.loads(done[1])["ended"]
    during = [count for at, count in seen if started < at < ended]
    # Reads answered while the tool ran, and the count went on meanwhile: the tool did not hold the actor.
    assert len(during) >= 2 and during[-1] > during[0], (started, ended, seen)
    assert (await state(runtime, counter))["is_processing"]


async def test_a_tool_that_never_returns_does_not_stop_other_sessions_of_its_actor(
    make_runtime: Factory, tmp_path: Path
) -> None:
    runtime = make_runtime(tools=SLOW_TOOLS)
    (stuck, failing, talking), worker = await packed(runtime, 3)
    lock = tmp_path / "tool.lock"
    lock.touch()
    with lock.open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            await chat(runtime, stuck, f"/tool hang {json.dumps({'lock': str(lock)})}")
            await eventually(lock.with_suffix(".waiting").exists)
            await chat(runtime, failing, "/error on purpose")  # a turn that fails, beside it
            await chat(runtime, talking, "count to 10")
            assert (await idle(runtime, talking))["messages"][-1]["content"] == counted(10)
            await idle(runtime, failing)
            (failed,) = [e for e in await runtime.call(failing, "last_events", 100) if e.type == "processing_done"][-1:]
            assert failed.data["error"].endswith("on purpose")
            assert (await state(runtime, stuck))["is_processing"]  # still waiting for the lock, and alone in that
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    after = await idle(runtime, stuck)
    (done,) = [m["tool_result"] for m in after["messages"] if m["tool_result"]]
    assert done[1] == "released" and after["messages"][-1]["content"]
    assert sorted(await worker.held.remote()) == sorted([stuck, failing, talking])
