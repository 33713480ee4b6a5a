"""A new version deployed on the running runtime while 20 sessions are mid-turn (docs/lifecycle.md#upgrades): the
same Serve application deployed again with a changed config, as `serve deploy` does, its tool answering "v2"."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ray

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.actors.directory import named_actors
from aomi_runtime.actors.versions import Stamp, app_version
from aomi_runtime.agent.apps import AppSpec, Limits
from aomi_runtime.serve_app.settings import Settings
from tests.helpers import eventually
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import Stream, frames, read_until

APP = "upgrade"  # the Serve application, at /upgrade of Serve's proxy
NAMESPACE = "aomi-upgrade-test"
SESSIONS = 20
STREAMS = 5
GONE_SECONDS = 15.0  # the drain's pass (0.5 s) and an actor's stop (under 2 s), on a loaded machine


def settings(database_url: str, version: str) -> Settings:
    # Ten sessions an actor: the 20 sessions in two or three processes of each version on a 2-core machine.
    spec = AppSpec(
        name="default",
        tools=(f"tests.serve_app.upgrade_tools:slow_{version}",),
        limits=Limits(sessions_per_actor=10),
    )
    return Settings(database_url=database_url, namespace=NAMESPACE, apps=(spec,), keepalive_seconds=1)


@contextlib.contextmanager
def held(lock: Path) -> Iterator[Any]:
    """The lock every `slow` tool given it waits for, held by the test until it lets go."""
    with lock.open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield file


def session_actors() -> set[str]:
    """The names of the App's session actors running."""
    namespace = app_namespace(NAMESPACE, "default")
    found = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in found if a["namespace"] == namespace and a["name"].startswith("session-actor:")}


def slow(lock: Path | None = None) -> str:
    return "/tool slow " + json.dumps({"lock": str(lock)} if lock else {})


async def follow(
    client: httpx.AsyncClient, session_id: str, after: int, turns: int, upto: int, reached: asyncio.Event
) -> tuple[list[int], int]:
    """A client following a session's events from `after` until its `turns`-th `processing_done`, over as many
    streams as it takes, each resuming with `Last-Event-ID`; sets `reached` once given the event `upto`. Returns
    the seqs it was given and how many times it reconnected."""
    seqs: list[int] = []
    done = reconnects = 0
    while True:
        headers = {**h(session_id), "Accept": "text/event-stream", "Last-Event-ID": str(seqs[-1] if seqs else after)}
        with contextlib.suppress(httpx.TransportError):
            async with client.stream("GET", "/api/updates", headers=headers) as response:
                if response.status_code == 200:
                    async for seq, data in frames(response, Stream()):
                        seqs.append(seq)
                        if seq >= upto:
                            reached.set()
                        done += data["type"] == "processing_done"
                        if done == turns:
                            return seqs, reconnects
        reconnects += 1


async def last_seq(client: httpx.AsyncClient, session_id: str) -> int:
    seq = (await client.get("/api/state", headers=h(session_id))).json()["last_event_id"]
    assert isinstance(seq, int)
    return seq


async def draining(client: httpx.AsyncClient) -> float:
    """The App's session actors of an older version, by `GET /metrics`."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith('aomi_session_actors_draining{app="default"}'):
            return float(line.split()[-1])
    raise AssertionError("no aomi_session_actors_draining for the App")


async def new_session_runs(client: httpx.AsyncClient) -> list[str]:
    """The version a new session's turn ran."""
    fresh = sid()
    assert (await client.post("/api/chat", params={"message": slow()}, headers=h(fresh))).status_code == 200
    await read_until(client, fresh, "processing_done")
    return tool_answers((await client.get("/api/state", headers=h(fresh))).json()["messages"])


def tool_answers(messages: list[dict[str, Any]]) -> list[str]:
    """The versions the `slow` tool answered in these messages."""
    return [json.loads(m["tool_result"][1])["version"] for m in messages if m["tool_result"] is not None]


async def test_an_upgrade_mid_turn_loses_no_turn_and_new_turns_run_the_new_version(
    tmp_path: Path, runtime_url: str, proxy_url: str
) -> None:
    from ray import serve

    from aomi_runtime.serve_app.launch import deploy

    database_url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    lock = tmp_path / "lock"
    ids = [sid() for _ in range(SESSIONS)]
    followers: dict[str, asyncio.Task[tuple[list[int], int]]] = {}
    try:
        v1 = settings(database_url, "v1").model_copy(update={"deployed_at": time.time()})
        deploy(v1, name=APP, route_prefix=f"/{APP}")
        async with httpx.AsyncClient(base_url=f"{proxy_url}/{APP}", timeout=30) as client:
            # History acknowledged before: a turn each, answered by v1.
            for s in ids:
                assert (await client.post("/api/chat", params={"message": slow()}, headers=h(s))).status_code == 200
            await asyncio.gather(*(read_until(client, s, "processing_done") for s in ids))
            with held(lock):
                before = {s: (await client.get("/api/state", headers=h(s))).json()["messages"] for s in ids}
                marks = marks_v1 = {s: await last_seq(client, s) for s in ids}
                for s in ids:
                    sent = await client.post("/api/chat", params={"message": slow(lock)}, headers=h(s))
                    assert sent.status_code == 200
                # Every session mid-turn: its tool has reported progress and waits for the lock.
                await asyncio.gather(*(read_until(client, s, "tool_update", past=marks[s]) for s in ids))
                old_actors = session_actors()
                assert old_actors, "no session actor found: the check of their end would prove nothing"
                # Followed through the deploy (its replica stops), the drain (the session moves) and a v2 turn, from
                # the turn's start: the streams cut by the deploy have sent events, and resume after them.
                reached = {s: asyncio.Event() for s in ids[:STREAMS]}
                for s, event in reached.items():
                    upto = await last_seq(client, s)
                    followers[s] = asyncio.create_task(follow(client, s, marks[s], 2, upto, event))
                await asyncio.wait_for(asyncio.gather(*(event.wait() for event in reached.values())), 30)
                started = time.monotonic()
                await asyncio.to_thread(deploy, settings(database_url, "v2"), name=APP, route_prefix=f"/{APP}")
                deployed_seconds = time.monotonic() - started
                assert await draining(client) >= 1, "no actor of the old version draining while its turns run"
            # The lock let go: the running turns finish where they run.
            await asyncio.gather(*(read_until(client, s, "processing_done", past=marks[s]) for s in ids))
            for s in ids:
                messages = (await client.get("/api/state", headers=h(s))).json()["messages"]
                assert messages[: len(before[s])] == before[s], "an acknowledged message was lost or changed"
                turn = messages[len(before[s]) :]
                assert turn[0]["sender"] == "user" and turn[0]["content"] == slow(lock)
                answers = tool_answers(turn)
                # No turn lost: each one running at the deploy finishes on the version it started on. (A turn cut short
                # says so in a system event, never in `messages`: the check that accepted one here could not match.)
                assert answers == ["v1"], turn
            # New turns, on every session, run v2.
            marks = {s: await last_seq(client, s) for s in ids}
            for s in ids:
                assert (await client.post("/api/chat", params={"message": slow()}, headers=h(s))).status_code == 200
            await asyncio.gather(*(read_until(client, s, "processing_done", past=marks[s]) for s in ids))
            for s in ids:
                messages = (await client.get("/api/state", headers=h(s))).json()["messages"]
                assert tool_answers(messages)[-1] == "v2", f"a new turn ran the old version: {messages}"
            # The streams, resumed with Last-Event-ID across the upgrade, gave every event exactly once.
            for s, follower in followers.items():
                seqs, reconnects = await asyncio.wait_for(follower, 30)
                assert seqs == list(range(marks_v1[s] + 1, await last_seq(client, s) + 1))
                assert reconnects >= 1, "the stream was never cut: the resume is untested"
            # The old version's actors drained and stopped.
            # Ray tells no one of an actor's end: its name is looked for until it goes.
            await eventually(lambda: not old_actors & session_actors(), timeout=GONE_SECONDS, interval=0.1)
            assert session_actors(), "no actor of the new version"
            assert await draining(client) == 0
            # Ray restarts a directory with the spec it was first started with: it takes the newest version up again
            # from the actors it finds.
            directory = ray.get_actor("directory", namespace=app_namespace(NAMESPACE, "default"))
            ray.kill(directory, no_restart=False)
            assert await new_session_runs(client) == ["v2"], "a restarted directory placed a session in the old version"
            # A replica of the v1 deploy, started late in a rolling update, says its version: it changes nothing.
            stamp = Stamp(v1.deployed_at, app_version(v1.apps[0], None, v1.placement))
            assert await directory.deploy.remote(v1.apps[0], {}, stamp, v1.placement) != stamp.version
            assert await new_session_runs(client) == ["v2"], "an older deploy's replica took the App back"
        print(f"deploying v2 took {deployed_seconds:.1f} s")
    finally:
        for follower in followers.values():
            follower.cancel()
        serve.delete(APP)
        for actor in named_actors(app_namespace(NAMESPACE, "default")):
            ray.kill(actor, no_restart=True)
