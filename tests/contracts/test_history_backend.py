"""The `HistoryBackend` contract, written once and run against every backend: in-memory, SQLite, PostgreSQL,
and a custom one loaded by import path."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from aomi_runtime.agent.errors import AppMismatch, InvalidInput
from aomi_runtime.agent.protocols import HistoryBackend
from aomi_runtime.agent.records import Commit, Event, Message, QueuedMessage, SessionRecord, ToolCall, utcnow
from aomi_runtime.backends.history import InMemoryHistory, SqlHistory, open_history


class WithoutPages(InMemoryHistory):
    """A backend written before history pages: everything but `messages` (None: no such method, to a protocol)."""

    messages = None  # type: ignore[assignment]


def custom_backend() -> HistoryBackend:
    """What a user's own backend looks like to `open_history`: a factory by import path."""
    return InMemoryHistory()


@pytest.fixture(params=["memory", "sqlite", "postgres", "custom"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryBackend]:
    if request.param == "memory":
        history = open_history("memory://")
    elif request.param == "sqlite":
        history = open_history(f"sqlite:///{tmp_path / 'history.db'}")
    elif request.param == "postgres":
        history = open_history(request.getfixturevalue("postgres_url"))
    else:
        history = open_history("tests.contracts.test_history_backend:custom_backend")
    await history.setup()
    await history.setup()  # idempotent
    yield history
    await history.close()


def new_id() -> str:
    return f"s-{uuid.uuid4()}"


def record(session_id: str, app: str = "a", **fields: object) -> SessionRecord:
    return SessionRecord(session_id=session_id, app=app, **fields)  # type: ignore[arg-type]


async def test_a_commit_is_loaded_back_whole(backend: HistoryBackend) -> None:
    sid = new_id()
    call = ToolCall(id="t", call_id="c", name="time_now", arguments={"topic": "x"})
    messages = [
        Message(id=0, sender="user", content="hi", request_id="r"),
        Message(id=1, sender="agent", content="", tool_result=("x", '{"a": 1}'), tool_call=call),
        Message(id=2, sender="agent", content="partial", is_streaming=True),
    ]
    rec = record(
        sid,
        public_key="0xabc",
        user_state={"evm": {"chainId": 1}},
        pending_system_events=[{"SystemNotice": "n"}],
        queue=[QueuedMessage(content="later")],
        model_notes=["note"],
        is_processing=True,
        last_seq=2,
    )
    events = [
        Event(seq=1, data={"type": "processing_started", "session_id": sid}),
        Event(seq=2, data={"type": "x", "n": [1]}),
    ]
    await backend.commit("a", Commit(record=rec, messages=messages, events=events))
    stored = await backend.load("a", sid)
    assert stored is not None
    assert stored.record == rec
    assert stored.messages == messages
    assert await backend.get("a", sid) == rec
    assert await backend.events("a", sid, 0, 100) == events


def long_history(size: int) -> list[Message]:
    """`size` messages of every shape a session stores: text in every plane, tool results with their calls,
    streaming and queued flags, request ids, timestamps to the microsecond."""
    shapes = [
        lambda i: Message(id=i, sender="user", content=f"q{i} \x00 é \U0001f600 \n", request_id=f"r{i}"),
        lambda i: Message(id=i, sender="agent", content="a" * (i % 300), is_streaming=i % 7 == 0),
        lambda i: Message(
            id=i,
            sender="agent",
            tool_result=(f"t{i}", '{"ok": [1, 2.5, null]}'),
            tool_call=ToolCall(id=f"c{i}", call_id=None, name="long_task", arguments={"steps": i, "x": {"y": [i]}}),
        ),
        lambda i: Message(id=i, sender="system", content="", queued=i % 2 == 0),
    ]
    start = utcnow()
    return [shapes[i % 4](i).model_copy(update={"timestamp": start + timedelta(microseconds=i)}) for i in range(size)]


async def test_a_long_session_loads_back_equal(backend: HistoryBackend) -> None:
    sid = new_id()
    messages = long_history(10_000)
    rec = record(sid, title="Long", user_state={"a": [1]}, last_seq=3)
    for start in range(0, len(messages), 2_500):  # as turns would write it, in several commits
        await backend.commit("a", Commit(record=rec, messages=messages[start : start + 2_500]))
    stored = await backend.load("a", sid)
    assert stored is not None and stored.record == rec
    assert stored.messages == messages


async def test_text_comes_back_byte_for_byte(backend: HistoryBackend) -> None:
    sid = new_id()
    text = "nul\x00 tab\t nl\n\ndata: x\n\n ' OR 1=1; -- \U0001f600 \u0800 \U00010000 \U0010fffd é"
    await backend.commit(
        "a", Commit(record=record(sid, title=text), messages=[Message(id=0, sender="user", content=text)])
    )
    stored = await backend.load("a", sid)
    assert stored is not None and stored.messages[0].content == text and stored.record.title == text


async def test_writes_are_idempotent_upserts(backend: HistoryBackend) -> None:
    sid = new_id()
    first = Commit(
        record=record(sid, last_seq=1),
        messages=[Message(id=0, sender="agent", content="a", is_streaming=True)],
        events=[Event(seq=1, data={"type": "one"})],
    )
    await backend.commit("a", first)
    await backend.commit("a", first)
    second = Commit(
        record=record(sid, title="T", last_seq=2),
        messages=[Message(id=0, sender="agent", content="abc"), Message(id=1, sender="user", content="q")],
        events=[Event(seq=1, data={"type": "one"}), Event(seq=2, data={"type": "two"})],
    )
    await backend.commit("a", second)
    stored = await backend.load("a", sid)
    assert stored is not None and stored.record.title == "T"
    assert [(m.id, m.content, m.is_streaming) for m in stored.messages] == [(0, "abc", False), (1, "q", False)]
    assert [e.data["type"] for e in await backend.events("a", sid, 0, 10)] == ["one", "two"]


async def test_messages_load_in_order_however_they_were_written(backend: HistoryBackend) -> None:
    sid = new_id()
    await backend.commit("a", Commit(record=record(sid)))
    for batch in ([5, 6], [0, 1, 2], [3, 4], [7, 8, 9, 10, 11]):
        await backend.commit(
            "a", Commit(record=record(sid), messages=[Message(id=i, sender="user", content=str(i)) for i in batch])
        )
    stored = await backend.load("a", sid)
    assert stored is not None and [m.id for m in stored.messages] == list(range(12))


async def test_events_page_forward_and_the_last_n_come_oldest_first(backend: HistoryBackend) -> None:
    sid = new_id()
    events = [Event(seq=i, data={"type": "e", "i": i}) for i in range(1, 31)]
    await backend.commit("a", Commit(record=record(sid), events=events[:10]))
    await backend.commit("a", Commit(record=record(sid), events=events[10:]))
    assert await backend.events("a", sid, 0, 5) == events[:5]
    assert await backend.events("a", sid, 25, 100) == events[25:]
    assert await backend.events("a", sid, 30, 100) == []
    assert await backend.last_events("a", sid, 3) == events[-3:]
    assert await backend.last_events("a", sid, 100) == events
    assert await backend.last_events("a", sid, 0) == []


async def test_messages_page_backward_newest_first_each_page_in_order(backend: HistoryBackend) -> None:
    sid = new_id()
    messages = [Message(id=i, sender="user", content=str(i)) for i in range(25)]
    await backend.commit("a", Commit(record=record(sid), messages=messages[10:]))
    await backend.commit("a", Commit(record=record(sid), messages=messages[:10]))
    assert await backend.messages("a", sid, None, 10) == messages[15:]
    assert await backend.messages("a", sid, 15, 10) == messages[5:15]
    assert await backend.messages("a", sid, 5, 10) == messages[:5]
    assert await backend.messages("a", sid, 0, 10) == []
    assert await backend.messages("a", sid, None, 100) == messages
    assert await backend.messages("a", sid, 10**6, 3) == messages[-3:]
    assert await backend.messages("a", sid, None, 0) == []
    assert await backend.messages("a", new_id(), None, 10) == []


async def test_a_10000_message_session_pages_whole_while_it_grows(backend: HistoryBackend) -> None:
    """Pages of 100 back from the newest, and of events forward, while commits append to both: each item
    once, none missing, the appended ones after the first page's cursor (messages) or in later pages (events)."""
    sid = new_id()
    messages = long_history(10_100)
    events = [Event(seq=i, data={"type": "e", "i": i}) for i in range(1, 10_101)]
    for start in range(0, 10_000, 2_500):
        batch = slice(start, start + 2_500)
        await backend.commit("a", Commit(record=record(sid), messages=messages[batch], events=events[batch]))
    read_messages: list[Message] = []
    read_events: list[Event] = []
    before: int | None = None
    after, appended = 0, 10_000
    for _ in range(200):  # 101 pages: a cursor that does not move fails here, rather than loop
        page = await backend.messages("a", sid, before, 100)
        read_messages[:0] = page
        forward = await backend.events("a", sid, after, 100)
        read_events += forward
        after = forward[-1].seq if forward else after
        if appended < len(messages):  # a commit lands between every two pages
            grown = slice(appended, appended + 10)
            await backend.commit("a", Commit(record=record(sid), messages=messages[grown], events=events[grown]))
            appended += 10
        if not page:
            break
        before = page[0].id
    assert not page and read_messages == messages[:10_000]
    while forward := await backend.events("a", sid, after, 100):
        read_events += forward
        after = forward[-1].seq
    assert read_events == events


async def test_list_is_per_public_key_newest_activity_first_and_limited(backend: HistoryBackend) -> None:
    key = f"0x{uuid.uuid4().hex}"
    now = utcnow()
    ids = [new_id() for _ in range(4)]
    for age, sid in enumerate(ids):
        await backend.commit("a", Commit(record=record(sid, public_key=key, updated_at=now - timedelta(minutes=age))))
    await backend.commit("a", Commit(record=record(new_id(), public_key="0xsomeone-else")))
    await backend.commit("b", Commit(record=record(new_id(), app="b", public_key=key)))
    assert [r.session_id for r in await backend.list("a", key, 10)] == ids
    assert [r.session_id for r in await backend.list("a", key, 2)] == ids[:2]
    # activity moves a session to the top
    await backend.commit("a", Commit(record=record(ids[3], public_key=key, updated_at=now + timedelta(minutes=1))))
    assert [r.session_id for r in await backend.list("a", key, 1)] == [ids[3]]


async def test_delete_takes_messages_and_events_with_it(backend: HistoryBackend) -> None:
    sid = new_id()
    await backend.commit(
        "a",
        Commit(
            record=record(sid),
            messages=[Message(id=0, sender="user", content="x")],
            events=[Event(seq=1, data={"type": "e"})],
        ),
    )
    assert await backend.delete("a", sid)
    assert not await backend.delete("a", sid)
    assert await backend.load("a", sid) is None
    assert await backend.events("a", sid, 0, 10) == []
    assert await backend.owner(sid) is None
    # the id may be used again, and starts empty
    await backend.commit("a", Commit(record=record(sid)))
    stored = await backend.load("a", sid)
    assert stored is not None and stored.messages == []


async def test_every_method_is_scoped_by_app(backend: HistoryBackend) -> None:
    sid = new_id()
    await backend.commit(
        "a",
        Commit(
            record=record(sid, public_key="k"),
            messages=[Message(id=0, sender="user", content="secret")],
            events=[Event(seq=1, data={"type": "e"})],
        ),
    )
    assert await backend.load("b", sid) is None
    assert await backend.get("b", sid) is None
    assert await backend.list("b", "k", 10) == []
    assert await backend.events("b", sid, 0, 10) == []
    assert await backend.messages("b", sid, None, 10) == []
    assert await backend.last_events("b", sid, 10) == []
    assert not await backend.delete("b", sid)
    with pytest.raises(AppMismatch):
        await backend.commit("b", Commit(record=record(sid, app="b", title="taken over")))
    with pytest.raises(AppMismatch):
        await backend.commit("b", Commit(record=record(sid, app="a")))
    stored = await backend.load("a", sid)
    assert stored is not None and stored.record.title == "New Chat" and stored.messages[0].content == "secret"
    assert await backend.owner(sid) == "a"
    assert await backend.owner(new_id()) is None


async def test_count_is_per_app_and_follows_deletes(backend: HistoryBackend) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    ids = [new_id() for _ in range(3)]
    for sid in ids:
        await backend.commit(app, Commit(record=record(sid, app=app)))
    await backend.commit("other", Commit(record=record(new_id(), app="other")))
    assert await backend.count(app) == 3
    await backend.commit(app, Commit(record=record(ids[0], app=app, title="again")))  # an update adds none
    assert await backend.count(app) == 3
    assert await backend.delete(app, ids[1])
    assert await backend.count(app) == 2
    assert await backend.count(f"app-{uuid.uuid4().hex[:8]}") == 0


async def test_stale_lists_sessions_idle_since_before_a_time_oldest_first(backend: HistoryBackend) -> None:
    now = utcnow()
    app = f"app-{uuid.uuid4().hex[:8]}"
    ids = [new_id() for _ in range(3)]
    for days, sid in zip((10, 5, 1), ids, strict=True):
        await backend.commit(app, Commit(record=record(sid, app=app, updated_at=now - timedelta(days=days))))
    await backend.commit("other", Commit(record=record(new_id(), app="other", updated_at=now - timedelta(days=30))))
    assert await backend.stale(app, now - timedelta(days=2), 10) == ids[:2]
    assert await backend.stale(app, now - timedelta(days=2), 1) == ids[:1]
    assert await backend.stale(app, now - timedelta(days=20), 10) == []


async def test_concurrent_commits_of_many_sessions_all_land(backend: HistoryBackend) -> None:
    ids = [new_id() for _ in range(20)]

    async def write(sid: str) -> None:
        for i in range(5):
            await backend.commit(
                "a",
                Commit(
                    record=record(sid, last_seq=i + 1),
                    messages=[Message(id=i, sender="user", content=str(i))],
                    events=[Event(seq=i + 1, data={"type": "e"})],
                ),
            )

    await asyncio.gather(*(write(sid) for sid in ids))
    for sid in ids:
        stored = await backend.load("a", sid)
        assert stored is not None and [m.content for m in stored.messages] == ["0", "1", "2", "3", "4"]
        assert [e.seq for e in await backend.events("a", sid, 0, 10)] == [1, 2, 3, 4, 5]


def test_open_history_names_what_it_cannot_open() -> None:
    assert isinstance(open_history("sqlite:///x.db"), SqlHistory)
    with pytest.raises(InvalidInput, match="Unknown history backend"):
        open_history("nothing-here")
    with pytest.raises(InvalidInput, match="Cannot import"):
        open_history("no_such_module:factory")
    with pytest.raises(InvalidInput, match="not a HistoryBackend"):
        open_history("uuid:uuid4")
    with pytest.raises(InvalidInput, match=r"not a HistoryBackend: it has no messages\.$"):
        open_history("tests.contracts.test_history_backend:WithoutPages")
