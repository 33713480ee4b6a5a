"""Pages of a live session's history: from memory where it holds them, from the backend otherwise, equal to what
the backend holds either way."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable

from aomi_runtime.agent.event_log import RECENT_EVENTS
from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.backends.history import InMemoryHistory
from tests.helpers import scripted_app

STORED = 2_000


class CountedHistory(InMemoryHistory):
    """The in-memory backend, counting the pages read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        self.reads += 1
        return await super().events(app, session_id, after, limit)


async def restored(history: InMemoryHistory, session_id: str) -> LiveSession:
    """A session of `STORED` messages and events, restored."""
    messages = [Message(id=i, sender="user" if i % 2 else "agent", content=f"m{i}") for i in range(STORED)]
    events = [Event(seq=i, data={"type": "message", "i": i}) for i in range(1, STORED + 1)]
    record = SessionRecord(session_id=session_id, app="default", last_seq=STORED)
    await history.commit("default", Commit(record=record, messages=messages, events=events))
    stored = await history.load("default", session_id)
    assert stored is not None
    return await LiveSession.restore(scripted_app(), history, stored)


async def test_event_pages_come_from_memory_where_it_holds_them_and_equal_the_store(
    closing: Callable[[LiveSession], LiveSession],
) -> None:
    history = CountedHistory()
    session = closing(await restored(history, "p1"))
    for n in range(RECENT_EVENTS + 100):  # more than memory keeps: the oldest of these are read back too
        session._journal.event("system_notice", message=f"n{n}")
    await session._journal.flush()
    newest = session._log.published
    assert newest == STORED + RECENT_EVENTS + 100
    pages, after = [], 0
    while page := await session.events_page(after, 100):
        pages.append(page)
        after = page[-1].seq
    assert [e for p in pages for e in p] == await history.events("default", "p1", 0, 10**6)
    assert [e.seq for p in pages for e in p] == list(range(1, newest + 1))
    reads = history.reads
    in_memory = await session.events_page(newest - RECENT_EVENTS, RECENT_EVENTS)
    assert history.reads == reads, "the newest events are read from memory"
    assert in_memory == await history.events("default", "p1", newest - RECENT_EVENTS, RECENT_EVENTS)
    assert await session.events_page(newest, 100) == [] and await session.events_page(10**9, 100) == []


async def test_message_pages_equal_the_stores_while_the_session_grows(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    session = closing(await restored(history, "p2"))
    read: list[Message] = []
    before: int | None = None
    for turn in range(100):
        page = await session.messages_page(before, 100)
        assert page == await history.messages("default", "p2", before, 100)
        if not page:
            break
        read[:0] = page
        before = page[0].id
        if turn % 5 == 0:  # a message lands while the pages are read: after the first page, in no later one
            await session.post_system(f"notice {turn}")
            session._journal.add_message(Message(id=len(session.messages), sender="user", content=f"new {turn}"))
    assert [m.id for m in read] == list(range(STORED))
    assert read == (await history.load("default", "p2")).messages[:STORED]  # type: ignore[union-attr]
    # A page shows what is stored: a message not committed yet is committed first, as a snapshot does.
    session._journal.add_message(Message(id=len(session.messages), sender="user", content="last"))
    newest = await session.messages_page(None, 1)
    assert [m.content for m in newest] == ["last"] and newest == await history.messages("default", "p2", None, 1)


async def test_a_cursor_from_a_store_page_read_before_its_event_is_published_is_followed_not_replayed(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    """A replica that does not know the session's actor reads a page from the store, which holds a commit's events
    before the session publishes them (it waits for the replicas' copies to drop). The stream a client opens from
    that page's cursor must go on after it, not take it for an id from a deleted session and replay everything."""
    session = closing(await restored(history, "p3"))
    landed, go_on = asyncio.Event(), asyncio.Event()

    async def copies_dropping() -> None:
        landed.set()
        await go_on.wait()

    session.on_commit(copies_dropping)
    posting = asyncio.create_task(session.post_system("stored, not yet published"))
    await landed.wait()
    stored = await history.events("default", "p3", STORED, 100)  # what the store page shows
    assert [e.seq for e in stored] == [STORED + 1] and session._log.published == STORED
    following = asyncio.create_task(session.events_after(stored[-1].seq, 5.0))
    await asyncio.sleep(0)  # the stream's read has started, on the cursor the session has not published yet
    go_on.set()
    await posting
    assert [e.seq for e in await following] == []  # nothing after the cursor yet: no replay of 1...
    session.on_commit(lambda: None)
    await session.post_system("next")
    assert [e.seq for e in await session.events_after(stored[-1].seq, 5.0)] == [STORED + 2]
