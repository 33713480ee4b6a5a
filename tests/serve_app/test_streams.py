"""Many event streams at once on one replica, a limit per session, and resuming across a forced disconnect."""

from __future__ import annotations

import asyncio
import json

import httpx
import ray

from aomi_runtime.actors.app_actors import app_namespace
from tests.conftest import TEST_NAMESPACE
from tests.helpers import eventually, holders
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import Stream, frames, read_until

SESSIONS = 20
STREAMS_PER_SESSION = 15  # 300 in all, each under the default limit of 16 a session


async def _gauge(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("aomi_stream_subscribers ")))


async def _gauge_is(client: httpx.AsyncClient, value: float) -> bool:
    return await _gauge(client) == value


def _subscribers(session_id: str) -> int:
    actors = holders(app_namespace(TEST_NAMESPACE, "default"), session_id)
    return sum(ray.get(a.stats.remote())["sessions"][session_id]["subscribers"] for a in actors)


async def _follow(
    client: httpx.AsyncClient, session_id: str, opened: asyncio.Event, stream: Stream, until: str | None = None
) -> None:
    """Read the session's stream until an event of type `until` (or for ever)."""
    headers = {**h(session_id), "Accept": "text/event-stream"}
    async with client.stream("GET", "/api/updates", headers=headers, params={"after": 0}) as response:
        assert response.status_code == 200
        opened.set()
        async for _, data in frames(response, stream):
            if data["type"] == until:
                return


async def _status(client: httpx.AsyncClient, session_id: str) -> tuple[int, str]:
    """Open a stream and close it at once: its status, and its body if it is an error."""
    async with client.stream("GET", "/api/updates", headers=h(session_id)) as response:
        return response.status_code, (await response.aread()).decode() if response.status_code != 200 else ""


async def test_three_hundred_streams_all_get_their_session_and_all_close_cleanly(runtime_url: str) -> None:
    limits = httpx.Limits(max_connections=SESSIONS * STREAMS_PER_SESSION + 20)
    async with httpx.AsyncClient(base_url=runtime_url, timeout=60, limits=limits) as client:
        sessions = [sid() for _ in range(SESSIONS)]
        for s in sessions:  # live before the streams open, so each stream is counted from its first request
            assert (await client.post("/api/sessions", json={}, headers=h(s))).status_code == 200
        streams = {s: [Stream() for _ in range(STREAMS_PER_SESSION)] for s in sessions}
        opened = [asyncio.Event() for _ in range(SESSIONS * STREAMS_PER_SESSION)]
        events = iter(opened)
        readers = [
            asyncio.create_task(_follow(client, s, next(events), stream, "processing_done"))
            for s in sessions
            for stream in streams[s]
        ]
        async with asyncio.timeout(120):
            await asyncio.gather(*(o.wait() for o in opened))
            await eventually(lambda: _gauge_is(client, SESSIONS * STREAMS_PER_SESSION), timeout=30)
            for s in sessions:
                r = await client.post("/api/chat", params={"message": "count to 3"}, headers=h(s))
                assert r.status_code == 200
            await asyncio.gather(*readers)
        for s in sessions:
            stored = (await client.get("/api/events", params={"count": 1000}, headers=h(s))).json()
            done = next(i for i, e in enumerate(stored) if e["type"] == "processing_done")
            for stream in streams[s]:
                assert [data for _, data in stream.frames] == stored[: done + 1]
                assert stream.seqs == list(range(1, done + 2))

        async def all_closed() -> bool:
            return await _gauge(client) == 0 and all(_subscribers(s) == 0 for s in sessions)

        await eventually(all_closed, timeout=30)


async def test_one_stream_too_many_on_a_session_is_refused_with_429(runtime_url: str) -> None:
    s = sid()
    async with httpx.AsyncClient(base_url=runtime_url, timeout=30, limits=httpx.Limits(max_connections=40)) as client:
        await client.post("/api/chat", params={"message": "hello"}, headers=h(s))
        opened = [asyncio.Event() for _ in range(16)]
        readers = [asyncio.create_task(_follow(client, s, o, Stream())) for o in opened]
        await asyncio.gather(*(o.wait() for o in opened))
        status, body = await _status(client, s)
        assert status == 429 and "16 open event streams" in json.loads(body)["error"]
        other = sid()  # the limit is per session
        await client.post("/api/chat", params={"message": "hello"}, headers=h(other))
        done = await read_until(client, other, "processing_done")
        assert done.types[-1] == "processing_done"
        readers[0].cancel()  # one closes: a new one is let in
        await asyncio.gather(readers[0], return_exceptions=True)

        async def admitted() -> bool:
            return (await _status(client, s))[0] == 200

        await eventually(admitted, timeout=15)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def test_a_client_cut_off_mid_turn_resumes_with_last_event_id_and_gets_every_event_once(
    client: httpx.AsyncClient,
) -> None:
    s = sid()
    first = Stream()
    headers = {**h(s), "Accept": "text/event-stream"}
    await client.post("/api/chat", params={"message": "count to 20"}, headers=h(s))
    async with client.stream("GET", "/api/updates", headers=headers, params={"after": 0}) as response:
        async for _ in frames(response, first):
            if len(first.frames) == 2:
                break  # the connection is dropped here, mid-turn: the user message is out, the answer is not
    state = (await client.get("/api/state", headers=h(s))).json()
    assert state["is_processing"]  # so what follows is live, not replayed from a finished turn
    rest = await read_until(client, s, "processing_done", last_event_id=first.seqs[-1])
    stored = (await client.get("/api/events", params={"count": 1000}, headers=h(s))).json()
    got = first.frames + rest.frames
    assert [seq for seq, _ in got] == list(range(1, len(got) + 1))
    assert [data for _, data in got] == stored[: len(got)]
    assert got[-1][1]["type"] == "processing_done"
