"""The actors under load and faults: eviction by count and idle time, warm actors reused, the retention
sweep, a session actor, the directory or the store killed, many callers racing for one session."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.directory import WARM_ACTORS, WORKER_PREFIX, named_actors
from aomi_runtime.actors.event_streams import events_after
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec, Limits
from aomi_runtime.agent.errors import AppMismatch, LimitReached, SessionNotFound
from aomi_runtime.agent.records import Commit, SessionRecord, utcnow
from aomi_runtime.agent.session import CUT_SHORT
from aomi_runtime.backends.history import SqlHistory
from tests.helpers import eventually, holders

Factory = Callable[..., Runtime]


@pytest.fixture(params=[1, 4], ids=["actor-per-session", "4-per-actor"])
async def make_runtime(request: pytest.FixtureRequest, ray_instance: None, tmp_path: Path) -> AsyncIterator[Factory]:
    """Runtimes with Apps of their own limits, each in a namespace of its own; all stopped afterwards. Each test
    runs twice: a session actor per live session, and four sessions to an actor (packed)."""
    made: list[Runtime] = []

    def make(**limits: Any) -> Runtime:
        spec = AppSpec(name="default", limits=Limits(**{"sessions_per_actor": request.param, **limits}))
        runtime = Runtime([spec], f"sqlite:///{tmp_path / 'actors.db'}", f"aomi-t{uuid.uuid4().hex[:10]}")
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.stop()


@pytest.fixture
def runtime(make_runtime: Factory) -> Runtime:
    return make_runtime()


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[SqlHistory]:
    """The runtimes' database, read and written directly; closed when the test ends, however it ends."""
    backend = SqlHistory.from_url(f"sqlite:///{tmp_path / 'actors.db'}")
    try:
        await backend.setup()
        yield backend
    finally:
        await backend.close()


def namespace(runtime: Runtime) -> str:
    return runtime.app("default").namespace


async def state(runtime: Runtime, session_id: str) -> dict[str, Any]:
    return dict(json.loads(await runtime.call(session_id, "state", None)))


async def chat(runtime: Runtime, session_id: str, text: str) -> dict[str, Any]:
    return dict(
        json.loads(await runtime.chat(session_id, text, app=runtime.app("default"), user_state=None, public_key=None))
    )


async def idle(runtime: Runtime, session_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        # Quiet: the turn over, its title made, and no event since (a snapshot names the last one published).
        snap = await state(runtime, session_id)
        if snap["is_processing"] or snap["title"] == "New Chat":
            return None
        return snap if await state(runtime, session_id) == snap else None

    return await eventually(check, timeout=30)


async def directory_stats(runtime: Runtime) -> dict[str, Any]:
    return dict(await runtime.app("default").directory.stats.remote())


def worker_of(runtime: Runtime, session_id: str) -> Any:
    (worker,) = holders(namespace(runtime), session_id)
    return worker


# --- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("during", ["streaming", "tool"])
async def test_a_session_actor_killed_mid_turn_comes_back_with_the_turn_closed(runtime: Runtime, during: str) -> None:
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    await idle(runtime, s)
    text = "count to 1000" if during == "streaming" else '/tool long_task {"steps": 60, "pause": 0.05}'
    await chat(runtime, s, text)

    async def under_way() -> bool:  # text is streaming, or the tool is reporting progress
        if during == "streaming":
            return bool((await state(runtime, s))["messages"][-1]["content"])
        return any(e.data["type"] == "tool_update" for e in await runtime.call(s, "last_events", 10))

    await eventually(under_way)
    ray.kill(worker_of(runtime, s), no_restart=True)

    snap = await state(runtime, s)  # the dead handle is noticed, and the session rebuilt from the database
    assert not snap["is_processing"] and not any(m["is_streaming"] for m in snap["messages"])
    cut_short = [
        ("user", "hello"),
        ("agent", 'You said: "hello"'),
        ("user", text),
        ("agent", ""),  # the text it had streamed was never acknowledged as a message
    ]
    assert [(m["sender"], m["content"]) for m in snap["messages"]] == cut_short
    assert snap["system_events"] == [{"SystemError": CUT_SHORT}]
    assert (await runtime.call(s, "last_events", 1))[0].data["type"] == "processing_done"

    # The next turn asks the same tool again (or, while streaming, a short question): turns run one at a time,
    # and this one runs the tool as long, so by its end a run of the cut-short turn since the rebuild would show.
    again = text if during == "tool" else "are you back?"
    await chat(runtime, s, again)
    after = await idle(runtime, s)
    assert [(m["sender"], m["content"]) for m in after["messages"]][: len(cut_short) + 1] == [
        *cut_short,
        ("user", again),
    ]
    events = await runtime.call(s, "last_events", 10_000)
    completed = [e for e in events if e.data["type"] == "tool_complete"]
    assert len(completed) == (1 if during == "tool" else 0)  # the new turn's: the cut-short call was not run again
    if during == "streaming":
        assert after["messages"][-1]["content"] == 'You said: "are you back?"' and len(after["messages"]) == 6
    assert len(holders(namespace(runtime), s)) == 1


async def test_a_killed_directory_restarts_and_finds_the_live_sessions_again(runtime: Runtime) -> None:
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    before = await idle(runtime, s)
    worker = worker_of(runtime, s)
    ray.kill(runtime.app("default").directory, no_restart=False)

    fresh = Runtime(list(a.spec for a in runtime.apps.values()), "unused://", namespace(runtime).rsplit("-", 1)[0])
    assert await state(fresh, s) == before  # a new replica, no cached handles: asks the restarted directory
    assert holders(namespace(runtime), s) == [worker]
    assert (await directory_stats(runtime))["live"] == 1


async def test_a_store_killed_mid_write_loses_no_acknowledged_message(runtime: Runtime) -> None:
    sessions = [str(uuid.uuid4()) for _ in range(10)]
    for s in sessions:
        await chat(runtime, s, "warm up")

    async def send(s: str, i: int) -> str:
        await chat(runtime, s, f"message {i}")
        return f"message {i}"

    sends = [asyncio.create_task(send(s, i)) for i in range(5) for s in sessions]
    await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)  # writes are under way: one is acknowledged
    assert not all(t.done() for t in sends)  # and others are not yet
    ray.kill(runtime.app("default").store, no_restart=False)
    results = await asyncio.gather(*sends, return_exceptions=True)
    acknowledged = [r for r in results if isinstance(r, str)]
    assert len(acknowledged) == len(sends), [r for r in results if not isinstance(r, str)]
    for s in sessions:
        snap = await idle(runtime, s)
        users = [m["content"] for m in snap["messages"] if m["sender"] == "user"]
        assert sorted(users) == sorted(["warm up", *(f"message {i}" for i in range(5))])
    await runtime.close_sessions()  # from the database alone, too
    for s in sessions:
        users = [m["content"] for m in (await state(runtime, s))["messages"] if m["sender"] == "user"]
        assert len(users) == 6


async def test_callers_racing_for_a_new_session_from_many_replicas_make_one_actor(runtime: Runtime) -> None:
    s = str(uuid.uuid4())
    name = namespace(runtime).rsplit("-", 1)[0]
    replicas = [Runtime(list(a.spec for a in runtime.apps.values()), "unused://", name) for _ in range(5)]
    infos = await asyncio.gather(
        *(r.call(s, "info", app=r.app("default"), create=True) for r in replicas for _ in range(20))
    )
    assert {i.session_id for i in infos} == {s}
    assert len(holders(namespace(runtime), s)) == 1


async def test_fifty_messages_at_once_are_all_stored_in_arrival_order_and_answered_one_turn_at_a_time(
    runtime: Runtime,
) -> None:
    s = str(uuid.uuid4())
    texts = [f"m{i:02d}" for i in range(50)]
    await asyncio.gather(*(chat(runtime, s, t) for t in texts))
    snap = await idle(runtime, s)
    messages = snap["messages"]
    users = [m["content"] for m in messages if m["sender"] == "user"]
    assert sorted(users) == texts
    # one turn at a time: each user message is followed by its own answer before the next begins
    pairs = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages), 2)]
    assert all(answer == f'You said: "{question}"' for question, answer in pairs)
    # arrival order is the order the session logged them
    logged = [e.data["message"]["content"] for e in await runtime.call(s, "last_events", 10_000)
              if e.data["type"] == "message" and e.data["message"]["sender"] == "user"]  # fmt: skip
    assert logged == users


async def test_unknown_sessions_and_other_apps_are_refused(runtime: Runtime) -> None:
    with pytest.raises(SessionNotFound):
        await runtime.call(str(uuid.uuid4()), "state", None)
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    other = dataclasses.replace(runtime.app("default"), spec=AppSpec(name="other"))
    with pytest.raises(AppMismatch):
        await runtime.call(s, "state", None, app=other)


# --- the live set --------------------------------------------------------------------------------------


async def test_the_live_set_is_bounded_by_count_and_an_evicted_session_comes_back_the_same(
    make_runtime: Factory,
) -> None:
    runtime = make_runtime(max_live_sessions=3)
    sessions = [str(uuid.uuid4()) for _ in range(5)]
    snapshots = {}
    for s in sessions:
        await chat(runtime, s, f"hello from {s[:8]}")
        snapshots[s] = await idle(runtime, s)
    stats = await directory_stats(runtime)
    assert stats["live"] == 3 and stats["evicted"] == 2 and stats["created"] == 5
    for s in sessions[:2]:
        assert holders(namespace(runtime), s) == []  # the least recently used went
    first = sessions[0]
    assert await state(runtime, first) == snapshots[first]  # back through the database, equal
    stats = await directory_stats(runtime)
    assert stats["loaded"] == 1 and stats["live"] == 3


async def test_an_app_holding_its_limit_of_sessions_refuses_new_ones(make_runtime: Factory) -> None:
    runtime = make_runtime(max_sessions=2)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await chat(runtime, first, "hello")
    await chat(runtime, second, "hello")
    with pytest.raises(LimitReached, match="limit of 2 sessions"):
        await chat(runtime, str(uuid.uuid4()), "hello")
    assert (await chat(runtime, first, "still here"))["messages"]  # the sessions it holds go on
    assert await runtime.delete(second)
    assert (await chat(runtime, str(uuid.uuid4()), "room again"))["messages"]


async def test_idle_sessions_are_evicted_but_not_busy_or_watched_ones(make_runtime: Factory) -> None:
    runtime = make_runtime(idle_seconds=0.5)
    quiet, busy, watched = (str(uuid.uuid4()) for _ in range(3))
    for s in (quiet, busy, watched):
        await chat(runtime, s, "hello")
        await idle(runtime, s)
    await chat(runtime, busy, "count to 1000")
    last_seq = (await runtime.call(watched, "last_events", 1))[0].seq
    stream = asyncio.create_task(events_after(runtime, watched, last_seq, 30.0))  # waits: nothing new comes

    async def all_idle_long_enough() -> bool:
        # What the sweep decides by: each session idle for longer than its App allows, and only the quiet one
        # neither busy nor watched (so the two others are kept for that, not for their idle time).
        found = [(await worker_of(runtime, s).stats.remote())["sessions"][s] for s in (quiet, busy, watched)]
        return all(f["idle_seconds"] > 0.5 for f in found) and [(f["busy"], f["subscribers"]) for f in found] == [
            (False, 0),
            (True, 0),
            (True, 1),
        ]

    await eventually(all_idle_long_enough, timeout=20)  # within the watching stream's wait and the busy turn
    report = await runtime.sweep()
    assert report["default"]["evicted_idle"] == 1
    assert holders(namespace(runtime), quiet) == []
    assert len(holders(namespace(runtime), busy)) == 1 and len(holders(namespace(runtime), watched)) == 1
    stream.cancel()


async def test_evicted_actors_are_reused_warm_rather_than_started_again(make_runtime: Factory) -> None:
    runtime = make_runtime(max_live_sessions=1)
    first = str(uuid.uuid4())
    await chat(runtime, first, "hello")
    await idle(runtime, first)
    await eventually(lambda: _pool_full(runtime))  # the actor taken for the first session is replaced
    before = {w._actor_id for w in named_actors(namespace(runtime), WORKER_PREFIX)}
    for _ in range(4):
        s = str(uuid.uuid4())
        await chat(runtime, s, "hello")
        await idle(runtime, s)
    after = {w._actor_id for w in named_actors(namespace(runtime), WORKER_PREFIX)}
    assert after == before  # five sessions through one live slot, and not one process started for them
    stats = await directory_stats(runtime)
    assert stats["evicted"] == 4 and stats["live"] == 1


async def _pool_full(runtime: Runtime) -> bool:
    return bool((await directory_stats(runtime))["warm"] >= WARM_ACTORS)


async def test_the_retention_sweep_deletes_expired_sessions_with_their_history(
    make_runtime: Factory, history: SqlHistory
) -> None:
    runtime = make_runtime(retention_days=1)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    await chat(runtime, old, "from long ago")
    await chat(runtime, recent, "from today")
    await idle(runtime, old)
    await idle(runtime, recent)
    await runtime.close_sessions()
    stored = await history.load("default", old)
    assert stored is not None
    aged = stored.record.model_copy(update={"updated_at": utcnow() - timedelta(days=3)})
    await history.commit("default", Commit(record=aged))
    report = await runtime.sweep()
    assert report["default"]["expired"] == 1
    assert await history.load("default", old) is None and await history.events("default", old, 0, 10) == []
    assert await history.load("default", recent) is not None
    assert (await directory_stats(runtime))["expired"] == 1


async def test_a_record_without_messages_loads(runtime: Runtime, history: SqlHistory) -> None:
    s = str(uuid.uuid4())
    await history.commit("default", Commit(record=SessionRecord(session_id=s, app="default", title="Imported")))
    assert (await state(runtime, s))["title"] == "Imported"


async def test_a_session_read_while_it_is_deleted_stays_deleted(runtime: Runtime, history: SqlHistory) -> None:
    """Reads racing a delete (a console polling the session, say) never load it back between its release and the
    deletion of its rows: loaded back, its next commit would store it again."""
    for _ in range(3):
        s = str(uuid.uuid4())
        await chat(runtime, s, "hello")
        await idle(runtime, s)

        async def read(s: str = s) -> None:
            with contextlib.suppress(SessionNotFound):
                await runtime.call(s, "state", None)

        reads = [asyncio.create_task(read()) for _ in range(4)]
        deleting = asyncio.create_task(runtime.delete(s))
        for _ in range(20):  # reads all through the delete
            reads.append(asyncio.create_task(read()))
            await asyncio.sleep(0.01)
        assert await deleting
        await asyncio.gather(*reads)
        await runtime.close_sessions()  # anything loaded back is stored by its close
        assert await history.load("default", s) is None, "deleted, then stored again"
        with pytest.raises(SessionNotFound):
            await runtime.info(s)
