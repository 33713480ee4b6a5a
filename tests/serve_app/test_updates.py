"""`GET /api/updates`: events pushed as they happen, framed safely, resumable with no gap and no repeat."""

from __future__ import annotations

import asyncio
import json

import httpx

from aomi_runtime.agent.timings import Timings
from aomi_runtime.serve_app.settings import Settings
from tests.helpers import eventually
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import Stream, frames, read_until, reading


async def test_a_tool_turn_streams_every_event_in_order_while_it_runs(client: httpx.AsyncClient) -> None:
    s = sid()
    reader = await reading(client, s, "processing_done")  # open before the session exists, as a widget's is
    chat = await client.post("/api/chat", params={"message": '/tool long_task {"steps": 3}'}, headers=h(s))
    assert chat.status_code == 200, chat.text
    stream = await reader
    assert stream.seqs == list(range(1, len(stream.frames) + 1))
    assert stream.types == [
        "processing_started",
        "message",
        "message",
        "tool_update",
        "tool_update",
        "tool_update",
        "tool_complete",
        "message",
        "message",
        "processing_done",
    ]
    assert all(data["session_id"] == s for _, data in stream.frames)
    updates = [data for _, data in stream.frames if data["type"] == "tool_update"]
    assert [u["result"] for u in updates] == [{"step": i, "of": 3} for i in (1, 2, 3)]
    assert {u["tool_name"] for u in updates} == {"long_task"} and {u["call_id"] for u in updates} == {"call_1"}
    assert stream.comments >= 1  # the stream opens with a comment, so clients know it is live


async def test_a_tool_update_arrives_while_the_turn_still_runs(client: httpx.AsyncClient) -> None:
    # The test above would pass if the stream held every event back until the turn's end, as its frames are all
    # replayed from seq 1: here the first tool_update must come while the session still says it is processing, and
    # the turn's end (the tool's remaining steps, `pause` seconds each) well after it.
    s = sid()
    steps, pause = 4, 0.5
    message = f'/tool long_task {{"steps": {steps}, "pause": {pause}}}'
    loop = asyncio.get_running_loop()
    read_at: dict[str, float] = {}
    states: list[asyncio.Task[httpx.Response]] = []
    stream = Stream()

    async def follow() -> None:
        async with client.stream("GET", "/api/updates", headers=h(s)) as response:
            async for _, data in frames(response, stream):
                read_at.setdefault(data["type"], loop.time())
                if data["type"] == "tool_update" and not states:
                    states.append(asyncio.create_task(client.get("/api/state", headers=h(s))))  # asked now
                if data["type"] == "processing_done":
                    return

    # The stream is open before the message is sent, so that however slowly it opens, nothing is replayed.
    reader = asyncio.create_task(follow())
    await asyncio.wait_for(stream.opened.wait(), 20)
    await client.post("/api/chat", params={"message": message}, headers=h(s))
    await asyncio.wait_for(reader, 30)
    state = states[0] if states else None
    assert state is not None and stream.types.count("tool_update") == steps
    assert (await state).json()["is_processing"], "the first tool_update came once the turn was over"
    assert read_at["processing_done"] - read_at["tool_update"] > pause  # the server's gap: (steps - 1) * pause


async def test_a_turns_timings_are_stored_with_its_end_and_read_back_as_streamed(
    client: httpx.AsyncClient, runtime_settings: Settings
) -> None:
    s = sid()
    steps, pause = 2, 0.1
    reader = await reading(client, s, "processing_done")
    message = f'/tool long_task {{"steps": {steps}, "pause": {pause}}}'
    await client.post("/api/chat", params={"message": message}, headers=h(s))
    stream = await reader
    seq, live = stream.frames[-1]
    timings = Timings.model_validate(live["timings"])
    assert [s.kind for s in timings.spans if s.kind != "commit"] == ["model", "tool", "model"]
    assert {s.name for s in timings.spans if s.kind == "model"} == {"scripted"}
    tool = next(s for s in timings.spans if s.kind == "tool")
    assert tool.ms >= steps * pause * 1000 and tool.start_ms + tool.ms <= timings.ms + 0.2
    # SQLite's commits, each one a span: the first (the turn's start), the progress updates, the tool's result
    assert sum(s.kind == "commit" for s in timings.spans) >= 1 + steps + 1

    async def stored() -> list[dict[str, object]]:
        events = (await client.get("/api/events", params={"count": 1000}, headers=h(s))).json()
        return [e for e in events if e["type"] == "processing_done"]

    assert await stored() == [live]
    resumed = await read_until(client, s, "processing_done", last_event_id=seq - 1)
    assert resumed.frames == [(seq, live)]
    await runtime_settings.runtime().close_sessions()  # evicted: what follows is read back from the database
    assert await stored() == [live]
    assert (await read_until(client, s, "processing_done", after=seq - 1)).frames == [(seq, live)]


async def test_keep_alive_comments_come_while_nothing_happens(client: httpx.AsyncClient) -> None:
    s = sid()
    stream = Stream()
    async with client.stream("GET", "/api/updates", headers=h(s)) as response:

        async def count() -> None:
            async for _ in frames(response, stream):
                pass

        reader = asyncio.create_task(count())
        await eventually(lambda: _at_least(stream, 3), timeout=10)  # keepalive_seconds=1 in the test runtime
        reader.cancel()
    assert stream.frames == []


async def _at_least(stream: Stream, comments: int) -> bool:
    return stream.comments >= comments


async def test_resume_with_last_event_id_or_after_replays_the_rest_once(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": '/tool long_task {"steps": 2}'}, headers=h(s))
    whole = await read_until(client, s, "title_changed")
    cut = 4
    by_header = await read_until(client, s, "title_changed", last_event_id=cut)
    by_query = await read_until(client, s, "title_changed", after=cut)
    assert by_header.frames == by_query.frames == whole.frames[cut:]
    # then live: a second turn continues the same sequence, with nothing twice
    reader = await reading(client, s, "processing_done", last_event_id=whole.seqs[-1])
    await client.post("/api/chat", params={"message": "more"}, headers=h(s))
    live = await reader
    assert live.seqs == list(range(whole.seqs[-1] + 1, whole.seqs[-1] + 1 + len(live.frames)))


async def test_closing_the_stream_never_stops_the_turn(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "count to 30"}, headers=h(s))
    await read_until(client, s, "processing_started")  # the stream is closed right after this

    async def finished() -> str | None:
        body = (await client.get("/api/state", headers=h(s))).json()
        return None if body["is_processing"] else body["messages"][-1]["content"]

    assert await eventually(finished, timeout=20) == " ".join(str(i) for i in range(1, 31))


async def test_text_shaped_like_sse_framing_never_breaks_a_frame(client: httpx.AsyncClient) -> None:
    s = sid()
    evil = 'hi\n\ndata: {"type":"forged"}\n\nid: 999\n\r\n: comment\rend'
    await client.post("/api/sessions", json={"title": "a\n\ndata: x"}, headers=h(s))
    await client.post("/api/chat", json={"message": evil}, headers=h(s))
    stream = await read_until(client, s, "processing_done")
    user = next(data["message"] for _, data in stream.frames if data["type"] == "message")
    assert user["content"] == evil
    assert "forged" not in stream.types and 999 not in stream.seqs
    titles = [data["new_title"] for _, data in stream.frames if data["type"] == "title_changed"]
    assert titles == ["a\n\ndata: x"]


async def test_updates_needs_a_session_id_and_a_numeric_last_event_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/updates")
    assert r.status_code == 400 and "X-Session-Id" in r.json()["error"]
    r = await client.get("/api/updates", headers={**h(sid()), "Last-Event-ID": "abc"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"]
    r = await client.get("/api/updates", params={"after": -1}, headers=h(sid()))
    assert r.status_code == 422 and json.loads(r.text)["error"]
