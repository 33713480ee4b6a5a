"""The session and its turns, without Ray: the in-memory backend and the scripted model are real parts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest

from aomi_runtime.agent import streams as streams_module
from aomi_runtime.agent.apps import AppSpec
from aomi_runtime.agent.errors import (
    AppMismatch,
    LimitReached,
    SessionClosed,
    StorageError,
)
from aomi_runtime.agent.records import (
    INTERRUPTION,
    Commit,
    Event,
    Message,
    QueuedMessage,
    SessionRecord,
    StoredSession,
)
from aomi_runtime.agent.session import CUT_SHORT, LiveSession
from aomi_runtime.backends.history import InMemoryHistory
from tests.helpers import scripted_app


async def events_until(session: LiveSession, type_: str, after: int = 0, timeout: float = 10.0) -> list[Event]:
    """Every event after `after` up to and including the first of `type_`: waits on the session's log."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        batch = await session.events_after(after, remaining)
        for event in batch:
            seen.append(event)
            if event.data["type"] == type_:
                return seen
        after = batch[-1].seq if batch else after
    raise AssertionError(f"no {type_} event within {timeout}s; saw {[e.data['type'] for e in seen]}")


def types(events: list[Event]) -> list[str]:
    return [e.data["type"] for e in events]


@pytest.fixture
async def session(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> AsyncIterator[LiveSession]:
    yield closing(await LiveSession.create(scripted_app(), history, "s1", public_key="0xuser"))


async def test_chat_answers_at_once_with_the_turn_running(session: LiveSession) -> None:
    snap = await session.chat("hello there")
    assert [m.sender for m in snap.messages] == ["user", "agent"]
    assert snap.messages[0].content == "hello there" and not snap.messages[0].is_streaming
    assert snap.messages[1].content == "" and snap.messages[1].is_streaming
    assert snap.is_processing and snap.title == "New Chat" and snap.system_events == []


async def test_plain_reply_streams_into_one_message_and_ends_the_turn(session: LiveSession) -> None:
    await session.chat("hello there")
    events = await events_until(session, "processing_done")
    snap = await session.snapshot()
    assert [(m.sender, m.content, m.is_streaming) for m in snap.messages] == [
        ("user", "hello there", False),
        ("agent", 'You said: "hello there"', False),
    ]
    assert not snap.is_processing
    assert types(events) == ["processing_started", "message", "message", "processing_done"]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[2].data["message"]["content"] == 'You said: "hello there"'


async def test_tool_turn_has_the_shapes_clients_expect(session: LiveSession) -> None:
    await session.chat('/tool long_task {"steps": 3, "pause": 0.01}')
    events = await events_until(session, "processing_done")
    snap = await session.snapshot()
    user, text, result, final = snap.messages
    assert (user.sender, user.content) == ("user", '/tool long_task {"steps": 3, "pause": 0.01}')
    assert (text.sender, text.content, text.tool_result) == ("agent", "", None)
    assert result.tool_result == ("long_task", '{"steps": 3, "status": "done"}')
    assert result.tool_call is not None and result.tool_call.name == "long_task"
    assert final.content == 'The long_task tool returned: {"steps": 3, "status": "done"}'
    assert not any(m.is_streaming for m in snap.messages)
    updates = [e.data for e in events if e.data["type"] == "tool_update"]
    complete = next(e.data for e in events if e.data["type"] == "tool_complete")
    assert [u["result"] for u in updates] == [{"step": i, "of": 3} for i in (1, 2, 3)]
    assert {(u["status"], u["message"]) for u in updates} == {("running", "long_task is running")}
    assert {u["id"] for u in updates} == {complete["id"]} == {result.tool_call.id}
    assert complete == {
        "type": "tool_complete",
        "session_id": "s1",
        "id": result.tool_call.id,
        "call_id": "call_1",
        "tool_name": "long_task",
        "status": "completed",
        "message": "long_task completed",
        "result": {"steps": 3, "status": "done"},
    }


async def test_topic_argument_names_the_tool_result(session: LiveSession) -> None:
    await session.chat('/tool time_now {"topic": "clock"}')
    await events_until(session, "processing_done")
    result = (await session.snapshot()).messages[2]
    assert result.tool_result is not None and result.tool_result[0] == "clock"
    assert result.tool_call is not None and result.tool_call.arguments == {"topic": "clock"}


async def test_failing_and_unknown_tools_reach_the_model_as_errors(session: LiveSession) -> None:
    await session.chat("/tool always_fails")
    events = await events_until(session, "processing_done")
    assert "tool_complete" not in types(events)  # a quick tool: its result is its message
    snap = await session.snapshot()
    assert snap.messages[2].tool_result == (
        "always_fails",
        '{"error": "RuntimeError: always_fails failed, as it always does"}',
    )
    assert snap.messages[-1].content.startswith("The always_fails tool failed: RuntimeError")
    assert snap.system_events == []

    await session.chat("/tool no_such_tool {}")
    await events_until(session, "processing_done", after=events[-1].seq)
    last = (await session.snapshot()).messages[-1].content
    assert "Unknown tool 'no_such_tool'" in last and "time_now, long_task, always_fails" in last


async def test_model_failure_ends_the_turn_with_a_system_error_handed_out_once(session: LiveSession) -> None:
    await session.chat("/error the provider is down")
    events = await events_until(session, "processing_done")
    assert events[-1].data["error"] == "The scripted model failed, as asked: the provider is down"
    snap = await session.snapshot()
    assert snap.system_events == [{"SystemError": "The scripted model failed, as asked: the provider is down"}]
    assert not snap.is_processing and not any(m.is_streaming for m in snap.messages)
    assert (await session.snapshot()).system_events == []


async def test_messages_sent_during_a_turn_are_queued_in_order(session: LiveSession) -> None:
    await session.chat("count to 10")
    snap = await session.chat("first")
    snap = await session.chat("second")
    assert [(m.content, m.queued) for m in snap.messages[2:]] == [("first", True), ("second", True)]
    after = 0
    for _ in range(3):
        after = (await events_until(session, "processing_done", after=after))[-1].seq
    snap = await session.snapshot()
    assert [(m.sender, m.content) for m in snap.messages] == [
        ("user", "count to 10"),
        ("agent", "1 2 3 4 5 6 7 8 9 10"),
        ("user", "first"),
        ("agent", 'You said: "first"'),
        ("user", "second"),
        ("agent", 'You said: "second"'),
    ]
    assert [m.id for m in snap.messages] == list(range(6))


async def test_interrupt_stops_the_turn_keeps_its_text_and_is_idempotent(session: LiveSession) -> None:
    await session.chat("count to 1000")
    await asyncio.sleep(0.1)  # let a few numbers stream
    snap = await session.interrupt()
    assert not snap.is_processing
    partial = snap.messages[1].content
    assert partial.startswith("1 2") and not partial.endswith(" 1000") and not snap.messages[1].is_streaming
    assert snap.system_events == [INTERRUPTION]
    again = await session.interrupt()
    assert again.system_events == [] and again.messages == snap.messages
    done = [e for e in await session.last_events(10) if e.data["type"] == "processing_done"]
    assert {k: v for k, v in done[-1].data.items() if k != "timings"} == {
        "type": "processing_done",
        "session_id": "s1",
        "interrupted": True,
    }

    await session.chat("still there?")
    await events_until(session, "processing_done", after=done[-1].seq)
    assert (await session.snapshot()).messages[-1].content == 'You said: "still there?"'


async def test_interrupt_leaves_the_messages_queued_behind_the_turn_unanswered(
    session: LiveSession, history: InMemoryHistory
) -> None:
    await session.chat("count to 1000")
    await session.chat("next", request_id="r-next")
    await session.chat("and then", request_id="r-then")
    snap = await session.interrupt()
    assert not snap.is_processing
    assert [(m.sender, m.content, m.unanswered, m.queued) for m in snap.messages[2:]] == [
        ("user", "next", True, False),
        ("user", "and then", True, False),
    ]
    events = await session.last_events(10)
    # each one's wait ends (the Python client waits for its request's processing_done)
    assert [e.data for e in events if e.data.get("unanswered")] == [
        {"type": "processing_done", "session_id": "s1", "request_id": r, "unanswered": True}
        for r in ("r-next", "r-then")
    ]
    await asyncio.sleep(0.1)
    assert not session.is_processing and session.record.queue == []  # no turn ran for them
    stored = await history.load("default", "s1")
    assert stored is not None and [m.unanswered for m in stored.messages] == [False, False, True, True]

    await session.chat("after")  # a message sent after the interrupt gets its turn
    await events_until(session, "processing_done", after=events[-1].seq)
    assert (await session.snapshot()).messages[-1].content == 'You said: "after"'


async def test_title_is_made_after_the_first_turn_and_a_manual_one_stays(session: LiveSession) -> None:
    await session.chat("plan a trip to Lisbon in May please")
    events = await events_until(session, "title_changed")
    assert events[-1].data["new_title"] == "Plan a trip to Lisbon in"
    await session.rename("My trip")
    await session.chat("another question")
    await events_until(session, "processing_done", after=events[-1].seq)
    assert (await session.snapshot()).title == "My trip"
    assert session.record.title_is_manual


async def test_manual_title_during_the_first_turn_is_never_overwritten(session: LiveSession) -> None:
    await session.chat("count to 5")
    await session.rename("Chosen")
    events = await events_until(session, "processing_done")
    assert [e.data["new_title"] for e in events if e.data["type"] == "title_changed"] == ["Chosen"]
    assert (await session.snapshot()).title == "Chosen"


async def test_system_text_and_json_are_published_handed_out_once_and_shown_to_the_model(session: LiveSession) -> None:
    notice = await session.post_system("maintenance at 5")
    assert (notice.sender, notice.content, notice.tool_result) == ("system", "maintenance at 5", None)
    posted = {"type": "wallet_tx", "payload": {"hash": "0x1"}, "session_id": "forged"}
    assert (await session.post_system(json.dumps(posted))).content == json.dumps(posted)  # as posted
    events = await session.last_events(2)
    assert [e.data for e in events] == [
        {"type": "system_notice", "session_id": "s1", "message": "maintenance at 5"},
        {"type": "wallet_tx", "session_id": "s1", "payload": {"hash": "0x1"}},
    ]
    snap = await session.snapshot()
    assert snap.system_events == [
        {"SystemNotice": "maintenance at 5"},
        {"InlineCall": {"type": "wallet_tx", "payload": posted}},
    ]
    assert (await session.snapshot()).system_events == []
    await session.chat("/system")
    await events_until(session, "processing_done", after=events[-1].seq)
    prompt = (await session.snapshot()).messages[-1].content
    assert "- maintenance at 5" in prompt and '"hash": "0x1"' in prompt


async def test_user_state_is_kept_as_sent_and_summarized_to_the_model(session: LiveSession) -> None:
    state = {"connection": {"isConnected": True}, "evm": {"address": "0xabc", "chainId": 8453}}
    await session.chat("/system", user_state=state)
    await events_until(session, "processing_done")
    snap = await session.snapshot()
    assert snap.user_state == state
    assert "User state: wallet 0xabc, chain id 8453, connected." in snap.messages[-1].content


async def test_every_message_and_event_is_stored_as_it_happens(session: LiveSession, history: InMemoryHistory) -> None:
    await session.chat('/tool long_task {"steps": 2, "pause": 0.01}')
    await events_until(session, "title_changed")
    stored = await history.load("default", "s1")
    assert stored is not None
    assert stored.messages == (await session.snapshot()).messages
    assert stored.record.title == session.record.title
    events = await history.events("default", "s1", 0, 1000)
    assert [e.seq for e in events] == list(range(1, session.record.last_seq + 1))
    assert events == await session.events_after(0, 0)


async def test_a_retried_request_adds_its_message_once(session: LiveSession) -> None:
    await session.chat("once", request_id="r-1")
    snap = await session.chat("once", request_id="r-1")
    assert [m.content for m in snap.messages if m.sender == "user"] == ["once"]


async def test_the_session_follows_the_wallet_and_client_a_request_names(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    session = closing(await LiveSession.create(scripted_app(), history, "unbound"))
    await session.snapshot(client_id="browser-1")  # bound to none yet: bound
    await session.chat("hi", public_key="0xfirst")
    assert [r.session_id for r in await history.list("default", "0xfirst", 10)] == ["unbound"]
    # Aomi rebinds on every request: the wallet connected last owns the session, and the change is stored.
    await session.chat("again", public_key="0xsecond")
    assert [r.session_id for r in await history.list("default", "0xsecond", 10)] == ["unbound"]
    assert await history.list("default", "0xfirst", 10) == []
    # A snapshot (state, which takes no key) binds a client only to a session bound to none; a chat rebinds.
    await session.snapshot(client_id="cli-2")
    stored = await history.get("default", "unbound")
    assert stored is not None and stored.client_id == "browser-1"
    await session.chat("client named", client_id="cli-2")
    stored = await history.get("default", "unbound")
    assert stored is not None and (stored.public_key, stored.client_id) == ("0xsecond", "cli-2")
    await session.chat("no wallet named")  # a request naming none leaves the binding as it is
    stored = await history.get("default", "unbound")
    assert stored is not None and (stored.public_key, stored.client_id) == ("0xsecond", "cli-2")


async def test_events_after_waits_for_the_next_event(session: LiveSession) -> None:
    assert await session.events_after(0, 0.01) == []
    waiter = asyncio.create_task(session.events_after(0, 5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await session.post_system("wake up")
    assert [e.data["message"] for e in await waiter] == ["wake up"]


async def test_a_closed_session_refuses_calls(session: LiveSession) -> None:
    await session.chat("count to 1000")
    await session.close()
    with pytest.raises(SessionClosed):
        await session.chat("hello")
    assert session.record.is_processing  # cut short: the stored record says so, for the reconstructor


async def test_another_apps_session_id_is_refused(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    closing(await LiveSession.create(scripted_app(), history, "taken"))
    other = scripted_app(AppSpec(name="other"))
    with pytest.raises(AppMismatch):
        await LiveSession.create(other, history, "taken")


async def test_restore_closes_a_turn_its_process_left_open(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    record = SessionRecord(session_id="s9", app="default", is_processing=True, last_seq=2)
    messages = [
        Message(id=0, sender="user", content="count to 1000"),
        Message(id=1, sender="agent", content="1 2 3", is_streaming=True),
    ]
    await history.commit("default", Commit(record=record, messages=messages))
    stored = await history.load("default", "s9")
    assert stored is not None
    session = closing(await LiveSession.restore(scripted_app(), history, stored))
    snap = await session.snapshot()
    assert not snap.is_processing
    assert [(m.content, m.is_streaming) for m in snap.messages] == [("count to 1000", False), ("1 2 3", False)]
    assert snap.system_events == [{"SystemError": CUT_SHORT}]
    events = await history.events("default", "s9", 2, 10)
    assert types(events) == ["message", "processing_done"] and events[-1].data["error"] == CUT_SHORT
    await session.chat("hello again")
    await events_until(session, "processing_done", after=events[-1].seq)
    assert (await session.snapshot()).messages[-1].content == 'You said: "hello again"'


async def test_restore_gives_queued_messages_their_turns(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    record = SessionRecord(session_id="s8", app="default", queue=[QueuedMessage(content="waiting")])
    await history.commit("default", Commit(record=record))
    session = closing(await LiveSession.restore(scripted_app(), history, StoredSession(record=record)))
    await events_until(session, "processing_done")
    assert [m.content for m in (await session.snapshot()).messages] == ["waiting", 'You said: "waiting"']


class GatedHistory(InMemoryHistory):
    """A backend whose commits wait until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self, app: str, commit: Commit) -> None:
        await self.gate.wait()
        await super().commit(app, commit)


async def test_a_system_event_added_while_a_snapshot_is_being_stored_is_handed_out_once(
    closing: Callable[[LiveSession], LiveSession],
) -> None:
    history = GatedHistory()
    session = closing(await LiveSession.create(scripted_app(), history, "s9"))
    history.gate.clear()
    reading = asyncio.create_task(session.snapshot({"step": 1}))  # its commit waits at the gate
    await asyncio.sleep(0.05)
    posting = asyncio.create_task(session.post_system("posted meanwhile"))
    await asyncio.sleep(0.05)
    history.gate.set()
    first = await reading
    await posting
    second = await session.snapshot()
    handed_out = first.system_events + second.system_events + (await session.snapshot()).system_events
    assert handed_out == [{"SystemNotice": "posted meanwhile"}]


class FailingHistory(InMemoryHistory):
    """A backend whose database is down until `up` is set."""

    up = True

    async def commit(self, app: str, commit: Commit) -> None:
        if not self.up:
            raise StorageError("The database is down.")
        await super().commit(app, commit)


async def test_a_message_that_could_not_be_stored_is_refused_and_the_session_rebuilt_from_storage(
    closing: Callable[[LiveSession], LiveSession],
) -> None:
    history = FailingHistory()
    session = closing(await LiveSession.create(scripted_app(), history, "s7"))
    history.up = False
    with pytest.raises(StorageError):
        await session.chat("lost")
    with pytest.raises(SessionClosed):  # memory is no longer trusted
        await session.snapshot()
    history.up = True
    stored = await history.load("default", "s7")
    assert stored is not None and stored.messages == [] and not stored.record.is_processing
    rebuilt = closing(await LiveSession.restore(scripted_app(), history, stored))
    await rebuilt.chat("kept")
    await events_until(rebuilt, "processing_done")
    assert [m.content for m in (await rebuilt.snapshot()).messages] == ["kept", 'You said: "kept"']
    events = await history.events("default", "s7", 0, 100)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_open_streams_are_counted_and_one_too_many_is_refused(session: LiveSession) -> None:
    assert session.open_stream("a", max_streams=2) == session.record.last_seq
    session.open_stream("b", max_streams=2)
    session.open_stream("a", max_streams=2)  # the same stream again is not another one
    with pytest.raises(LimitReached, match="2 open event streams"):
        session.open_stream("c", max_streams=2)
    assert session.subscribers == 2 and session.is_busy
    session.close_stream("a")
    session.open_stream("c", max_streams=2)
    assert session.subscribers == 2


async def test_a_cancelled_wait_closes_its_stream_and_a_silent_one_runs_out(
    session: LiveSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.open_stream("gone", max_streams=4)
    session.open_stream("silent", max_streams=4)
    waiter = asyncio.create_task(session.events_after(session.record.last_seq, 30, "gone"))
    await asyncio.sleep(0.01)
    waiter.cancel()  # what the replica does when the stream's client disconnects
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert session.subscribers == 1  # "silent" still holds its lease
    later = time.monotonic() + streams_module.STREAM_LEASE_SECONDS + 1
    monkeypatch.setattr(streams_module.time, "monotonic", lambda: later)
    assert session.subscribers == 0 and not session.is_busy  # a replica that died never closes its streams


async def test_a_snapshot_never_shows_a_turn_finished_before_its_end_is_stored(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> None:
    session = closing(await LiveSession.create(scripted_app(), history, "slow-store"))
    await session.chat("hello")
    await events_until(session, "title_changed")  # a later turn: no title is made after it
    held, release = asyncio.Event(), asyncio.Event()
    commit = history.commit

    async def slow_commit(app: str, c: Commit) -> None:
        if not c.record.is_processing and any(e.data["type"] == "processing_done" for e in c.events):
            held.set()  # the turn's last write: held back until released
            await release.wait()
        await commit(app, c)

    history.commit = slow_commit  # type: ignore[method-assign]
    await session.chat("count to 2")
    await held.wait()
    snapshot = asyncio.create_task(session.snapshot())
    done, _ = await asyncio.wait({snapshot}, timeout=0.2)  # a negative check: bounded, not awaited
    if done:
        assert snapshot.result().is_processing, "the turn shows as finished while its end is not stored"
    release.set()
    await snapshot
    assert not (await session.snapshot()).is_processing
    stored = await history.load("default", "slow-store")
    assert stored is not None and not stored.record.is_processing


async def test_system_events_a_read_took_as_its_session_closed_stay_for_the_next_holder(
    session: LiveSession, history: InMemoryHistory
) -> None:
    """A read hands out a session's system events as it stores them taken; if the session is released (evicted, or
    moved by an upgrade's drain) while that read waits for a commit under way, the read fails and is retried where
    the session loads next: the events must still be there, not stored as taken by the release's final commit."""
    await session.post_system("maintenance at 5")
    lock = session._journal._lock  # held as by another call's commit under way
    await lock.acquire()
    reading = asyncio.create_task(session.snapshot())
    await asyncio.sleep(0)  # the read took the events and waits for the commit
    closing = asyncio.create_task(session.close())
    await asyncio.sleep(0)
    lock.release()
    with pytest.raises(SessionClosed):
        await reading
    await closing
    stored = await history.load(session.app.name, "s1")
    assert stored is not None
    assert stored.record.pending_system_events == [{"SystemNotice": "maintenance at 5"}]
