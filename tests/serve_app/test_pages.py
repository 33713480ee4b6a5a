"""History in pages over HTTP and through the client: a 10,000-message session read page by page, stored only and
live alike, while messages and events are appended; each item once, none missing."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import httpx
import pytest

from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.client import AsyncClient, Client
from aomi_runtime.serve_app.settings import Settings
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.test_routes import assert_error

SIZE = 10_000


async def stored_session(settings: Settings, app: str = "default") -> str:
    """A session of `SIZE` messages and as many events, committed through the store in batches (never live)."""
    session_id = sid()
    history = SqlHistory.from_url(settings.database_url)
    try:
        await history.setup()
        record = SessionRecord(session_id=session_id, app=app, last_seq=SIZE)
        for start in range(0, SIZE, 2_000):
            ids = range(start, start + 2_000)
            messages = [Message(id=i, sender="agent" if i % 2 else "user", content=f"m{i}") for i in ids]
            events = [Event(seq=i + 1, data={"type": "message", "session_id": session_id, "i": i}) for i in ids]
            await history.commit(app, Commit(record=record, messages=messages, events=events))
    finally:
        await history.close()
    return session_id


async def all_messages(client: httpx.AsyncClient, s: str, limit: int, during: Any = None) -> list[dict[str, Any]]:
    """Every message, page by page from the newest; `during()` is awaited after each page."""
    read: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(SIZE // limit + 10):  # a cursor that does not move fails here, rather than loop
        r = await client.get(f"/api/sessions/{s}/messages", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        read[:0] = page["messages"]
        if during is not None:
            await during()
        if page["before"] is None:
            return read
        assert page["before"] == page["messages"][0]["id"]
        params["before"] = page["before"]
    raise AssertionError("the pages did not end")


async def all_events(client: httpx.AsyncClient, s: str, limit: int, during: Any = None) -> list[tuple[int, Any]]:
    """Every event from the first, page by page, up to a page shorter than `limit`: (seq, event) each."""
    read: list[tuple[int, Any]] = []
    after = 0
    for _ in range(2 * SIZE // limit + 10):
        r = await client.get("/api/events", params={"after": after, "limit": limit}, headers=h(s))
        assert r.status_code == 200, r.text
        page = r.json()
        read += [(after + 1 + i, e) for i, e in enumerate(page["events"])]
        assert page["after"] == after + len(page["events"])
        after = page["after"]
        if during is not None:
            await during()
        if len(page["events"]) < limit:
            return read
    raise AssertionError("the pages did not end")


def expected_messages(count: int = SIZE) -> list[str]:
    return [f"m{i}" for i in range(count)]


async def test_a_10000_message_session_pages_whole_stored_then_live_while_it_grows(
    client: httpx.AsyncClient, runtime_settings: Settings
) -> None:
    s = await stored_session(runtime_settings)
    # Stored only: nothing loads it for a page.
    stored_messages = await all_messages(client, s, 1_000)
    assert [m["content"] for m in stored_messages] == expected_messages()
    assert [m["id"] for m in stored_messages] == list(range(SIZE))
    stored_events = await all_events(client, s, 1_000)
    assert [seq for seq, _ in stored_events] == list(range(1, SIZE + 1))
    assert [e["i"] for _, e in stored_events] == list(range(SIZE))

    # Live (a state read loads it; this replica now knows its actor): the same pages, while it grows.
    assert len((await client.get("/api/state", headers=h(s))).json()["messages"]) == SIZE
    sent: list[str] = []

    async def chat() -> None:
        if len(sent) < 5:
            sent.append(f"more {len(sent)}")
            assert (await client.post("/api/chat", params={"message": sent[-1]}, headers=h(s))).status_code == 200

    live_messages = await all_messages(client, s, 100, during=chat)
    assert live_messages == stored_messages  # the first page was the newest then: what came after is in none

    async def notice() -> None:
        assert (await client.post("/api/system", params={"message": "tick"}, headers=h(s))).status_code == 200

    live_events = await all_events(client, s, 500, during=notice)
    assert live_events[:SIZE] == stored_events
    assert [seq for seq, _ in live_events] == list(range(1, len(live_events) + 1))  # none twice, none missing
    assert sum(e["type"] == "system_notice" for _, e in live_events) >= 20  # appended while paging, read too

    # Evicted again: the store answers the same, with what was appended.
    await runtime_settings.runtime().close_sessions()
    again = await all_messages(client, s, 1_000)
    assert again[:SIZE] == stored_messages
    assert [m["id"] for m in again] == list(range(len(again)))
    assert [m["content"] for m in again if m["sender"] == "user"][-len(sent) :] == sent
    assert (await all_events(client, s, 1_000))[: len(live_events)] == live_events


async def test_the_client_pages_through_messages_and_events(runtime_url: str, runtime_settings: Settings) -> None:
    s = await stored_session(runtime_settings)
    async with AsyncClient(runtime_url) as client:
        session = await client.session(s, create=False)
        pages = [page async for page in session.message_pages(page_size=700)]
        assert [len(p) for p in pages] == [700] * 14 + [200]  # newest page first
        assert [m.content for p in reversed(pages) for m in p] == expected_messages()
        events = [e async for page in session.event_pages(page_size=1_000) for e in page]
        assert [e.seq for e in events] == list(range(1, SIZE + 1))
        assert [e.data["i"] for e in events] == list(range(SIZE))
        tail = [e async for page in session.event_pages(after=SIZE - 5, page_size=2) for e in page]
        assert [e.seq for e in tail] == list(range(SIZE - 4, SIZE + 1))

    def sync_read() -> tuple[list[str], list[int]]:
        with Client(runtime_url) as sync:
            same = sync.session(s, create=False)
            contents = [m.content for p in reversed(list(same.message_pages(page_size=1_000))) for m in p]
            return contents, [e.seq for p in same.event_pages(after=9_990, page_size=3) for e in p]

    contents, seqs = await asyncio.to_thread(sync_read)
    assert contents == expected_messages() and seqs == list(range(9_991, SIZE + 1))


@pytest.mark.parametrize("app", ["default", "research"])
async def test_pages_are_scoped_as_the_sessions_other_reads(
    client: httpx.AsyncClient, keys: dict[str, str], app: str
) -> None:
    """The id is the capability on reads of an existing session (docs/api.md): a page answers as
    `GET /api/sessions/{id}` and `GET /api/events` do, whatever key is sent, and a session unknown (or another
    App's, to a request naming that App) as they do."""
    s = sid()
    owner_key = k(keys[app]) if app in keys else {}
    assert (
        await client.post("/api/chat", params={"message": "hi", "app": app}, headers={**h(s), **owner_key})
    ).status_code == 200
    for key in ({}, k(keys["billing"]), k("aomi_000000000000_nope"), owner_key):
        page = await client.get(f"/api/sessions/{s}/messages", headers=key)
        info = await client.get(f"/api/sessions/{s}", headers=key)
        assert page.status_code == info.status_code == 200
        assert page.json()["messages"][0]["content"] == "hi"
        events = await client.get("/api/events", params={"after": 0}, headers={**h(s), **key})
        last = await client.get("/api/events", params={"count": 10}, headers={**h(s), **key})
        assert events.status_code == last.status_code == 200
    unknown = sid()
    for r in (
        await client.get(f"/api/sessions/{unknown}/messages"),
        await client.get(f"/api/sessions/{unknown}"),
        await client.get("/api/events", params={"after": 0}, headers=h(unknown)),
        await client.get("/api/events", headers=h(unknown)),
    ):
        assert_error(r, 404)


async def test_pages_of_a_session_deleted_through_another_replica_are_404_as_its_other_reads(
    client: httpx.AsyncClient, runtime_settings: Settings
) -> None:
    """This replica knows the session's actor; another deletes the session. A page then answers 404, as
    `GET /api/sessions/{id}` and the last events do, not an empty page from the store."""
    other = runtime_settings.runtime()  # another replica's runtime: its own handle cache
    for page in (
        lambda s: client.get(f"/api/sessions/{s}/messages"),
        lambda s: client.get("/api/events", params={"after": 0}, headers=h(s)),
    ):
        s = sid()  # one each: the first read that reaches the actor drops the handle this replica holds
        assert (await client.post("/api/chat", params={"message": "hi"}, headers=h(s))).status_code == 200
        assert (await page(s)).status_code == 200
        assert await other.delete(s)
        assert_error(await page(s), 404)
        assert_error(await client.get(f"/api/sessions/{s}"), 404)
        assert_error(await client.get("/api/events", headers=h(s)), 404)


def test_a_sync_page_generator_left_open_past_its_clients_close_is_dropped_quietly(
    runtime_url: str, runtime_settings: Settings
) -> None:
    """Pages are meant to be left midway ("stop when you have read enough"): one kept past the client's close is
    closed by the client's loop as it stops, and dropping it later raises nothing (it used to try that loop again)."""
    s = asyncio.run(stored_session(runtime_settings))
    unraisable: list[BaseException | None] = []
    hook, sys.unraisablehook = sys.unraisablehook, lambda u: unraisable.append(u.exc_value)
    try:
        with Client(runtime_url) as client:
            pages = client.session(s, create=False).message_pages(page_size=10)
            assert [m.id for m in next(pages)] == list(range(SIZE - 10, SIZE))
        del pages
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
