"""A turn's timings: the recorder alone, and the spans a session's turns store on their `processing_done`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from aomi_runtime.agent.apps import DEFAULT_APP_SPEC
from aomi_runtime.agent.records import Event
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.agent.timings import MAX_CALL_SPANS, MAX_COMMIT_SPANS, MAX_NAME, Span, Timings, TurnTimings
from aomi_runtime.backends.history import InMemoryHistory
from tests.agent.test_session import events_until
from tests.helpers import scripted_app

ROUNDING = 0.2  # ms: two values rounded to 0.1 ms each


def within(span: Span, timings: Timings) -> bool:
    return span.start_ms >= 0 and span.start_ms + span.ms <= timings.ms + ROUNDING


def turn_timings(done: Event) -> Timings:
    assert done.data["type"] == "processing_done"
    return Timings.model_validate(done.data["timings"])


@pytest.fixture
async def session(
    history: InMemoryHistory, closing: Callable[[LiveSession], LiveSession]
) -> AsyncIterator[LiveSession]:
    yield closing(await LiveSession.create(scripted_app(), history, "t1"))


# --- the recorder ---------------------------------------------------------------------------------------------


def test_spans_are_ordered_by_start_relative_to_the_turn_and_rounded() -> None:
    timings = TurnTimings()
    with timings.span("tool", "outer", call_id="c1") as outer:
        time.sleep(0.01)
        with timings.span("commit", "commit", events=2):  # ends first, so is recorded first
            time.sleep(0.005)
        outer["status"] = "ok"
    done = timings.as_json()
    assert [(s["kind"], s["name"]) for s in done["spans"]] == [("tool", "outer"), ("commit", "commit")]
    tool, commit = done["spans"]
    assert tool["call_id"] == "c1" and tool["status"] == "ok" and commit["events"] == 2
    assert tool["start_ms"] < commit["start_ms"] and commit["start_ms"] >= 10 and commit["ms"] >= 5
    assert tool["ms"] >= 15 and done["ms"] >= tool["start_ms"] + tool["ms"]
    assert all(round(v, 1) == v for s in done["spans"] for v in (s["start_ms"], s["ms"]))
    assert "dropped" not in done


def test_a_span_whose_block_raises_is_kept() -> None:
    timings = TurnTimings()
    with pytest.raises(asyncio.CancelledError), timings.span("model", "m"):
        raise asyncio.CancelledError
    assert [s["kind"] for s in timings.as_json()["spans"]] == ["model"]


def test_spans_past_their_kinds_cap_are_counted_not_kept() -> None:
    """Commits have a cap of their own, so that a tool reporting progress in a loop (a commit each) leaves the
    model and tool calls recorded; model and tool calls share theirs."""
    timings = TurnTimings()
    for i in range(MAX_COMMIT_SPANS + 5):
        timings.record("commit", f"c{i}", time.perf_counter())
    for i in range(MAX_CALL_SPANS + 3):
        with timings.span("model" if i % 2 else "tool", f"m{i}"):
            pass
    done = Timings.model_validate(timings.as_json())
    commits = [s.name for s in done.spans if s.kind == "commit"]
    calls = [s.name for s in done.spans if s.kind != "commit"]
    assert commits == [f"c{i}" for i in range(MAX_COMMIT_SPANS)]  # the first ones are kept
    assert calls == [f"m{i}" for i in range(MAX_CALL_SPANS)]
    assert done.dropped == 5 + 3


def test_names_and_topics_the_model_chose_are_cut_short() -> None:
    timings = TurnTimings()
    with timings.span("tool", "t" * 1000, topic="x" * 1000, call_id="c" * 1000, status="ok"):
        pass
    (span,) = timings.as_json()["spans"]
    assert len(span["name"]) == len(span["topic"]) == len(span["call_id"]) == MAX_NAME and span["status"] == "ok"


# --- a session's turns ----------------------------------------------------------------------------------------


async def test_a_tool_turn_times_its_model_calls_tool_call_and_commits(session: LiveSession) -> None:
    steps, pause = 3, 0.05
    await session.chat(f'/tool long_task {{"steps": {steps}, "pause": {pause}}}')
    started = time.perf_counter()
    events = await events_until(session, "processing_done")
    waited_ms = (time.perf_counter() - started) * 1000
    timings = turn_timings(events[-1])
    spans = timings.spans
    assert [s.start_ms for s in spans] == sorted(s.start_ms for s in spans)
    assert all(within(s, timings) for s in spans), timings
    assert timings.ms <= waited_ms + 50  # the turn began just before `chat` answered
    # two model calls (the tool call, then the answer) around the one tool call
    assert [s.kind for s in spans if s.kind != "commit"] == ["model", "tool", "model"]
    slug = DEFAULT_APP_SPEC.model(None)
    assert slug is not None and {s.name for s in spans if s.kind == "model"} == {slug.slug}
    assert all((s.model_extra or {}).get("first_token_ms", -1) >= 0 for s in spans if s.kind == "model")
    tool = next(s for s in spans if s.kind == "tool")
    assert tool.name == "long_task" and tool.ms >= steps * pause * 1000
    assert tool.model_extra == {"call_id": "call_1", "topic": "long_task", "status": "ok"}
    # The first commit stores `processing_started` and the user's message (the agent's, empty, unannounced); each
    # progress update is a commit inside the tool's span.
    commits = [s for s in spans if s.kind == "commit"]
    assert spans[0] is commits[0] and commits[0].start_ms < 5
    assert commits[0].model_extra == {"messages": 2, "events": 2} and {c.name for c in commits} == {"commit"}
    answer = [s for s in spans if s.kind == "model"][-1]
    after = [c for c in commits if tool.start_ms <= c.start_ms < answer.start_ms]
    assert len(after) == steps + 2, spans  # each update, `tool_complete`, the result
    assert all(c.start_ms < tool.start_ms + tool.ms for c in after[:steps]), spans  # the updates, inside
    assert all(c.model_extra and c.model_extra["events"] >= 1 for c in after), spans


async def test_a_failed_tool_call_is_timed_as_an_error(session: LiveSession) -> None:
    await session.chat("/tool always_fails")
    done = (await events_until(session, "processing_done"))[-1]
    tool = next(s for s in turn_timings(done).spans if s.kind == "tool")
    assert tool.name == "always_fails"
    assert tool.model_extra == {"call_id": "call_1", "topic": "always_fails", "status": "error"}


async def test_an_interrupted_turn_keeps_the_timings_of_what_ran(session: LiveSession) -> None:
    await session.chat("count to 1000")
    await asyncio.sleep(0.2)
    await session.interrupt()
    done = [e for e in await session.last_events(20) if e.data["type"] == "processing_done"]
    assert len(done) == 1 and done[0].data["interrupted"]
    timings = turn_timings(done[0])
    assert [s.kind for s in timings.spans] == ["commit", "model"]  # the model was cancelled in its stream
    model = timings.spans[1]
    assert model.ms >= 150 and within(model, timings) and timings.ms >= 200


async def test_queued_turns_have_their_own_and_messages_an_interrupt_dropped_have_none(
    session: LiveSession,
) -> None:
    await session.chat("first", request_id="r1")
    await session.chat("second", request_id="r2")
    events = await events_until(session, "processing_done")
    events += await events_until(session, "processing_done", after=events[-1].seq)
    first, second = [turn_timings(e) for e in events if e.data["type"] == "processing_done"]
    # The second turn starts as the first ends: its first commit stores the first's end and its own start.
    assert second.spans[0].kind == "commit" and second.spans[0].start_ms < 5
    assert (
        [s.kind for s in first.spans if s.kind != "commit"]
        == ["model"]
        == [s.kind for s in second.spans if s.kind != "commit"]
    )

    await session.chat("count to 1000")
    await session.chat("dropped", request_id="r3")
    await session.interrupt()
    done = [e.data for e in await session.last_events(10) if e.data["type"] == "processing_done"]
    assert done[-2]["interrupted"] and "timings" in done[-2]
    assert done[-1] == {"type": "processing_done", "session_id": "t1", "request_id": "r3", "unanswered": True}


async def test_a_background_call_is_timed_by_its_queueing_only(session: LiveSession) -> None:
    pause = 0.3
    await session.chat(f'/tool background_task {{"steps": 1, "pause": {pause}}}')
    events = await events_until(session, "processing_done")
    tool = next(s for s in turn_timings(events[-1]).spans if s.kind == "tool")
    assert tool.model_extra == {"call_id": "call_1", "topic": "background_task", "status": "ok", "background": True}
    assert tool.ms < pause * 1000  # the call was queued, its task's first pause still to come
    await events_until(session, "tool_complete", after=events[-1].seq)  # the task ends before the session closes


# --- what a turn's timings hold, and what not -----------------------------------------------------------------


async def test_a_tools_progress_commits_do_not_crowd_out_the_turns_model_and_tool_spans(
    session: LiveSession,
) -> None:
    """A tool reporting progress makes one commit per update: past the commits' cap, the tool's own span and the
    model call after it are still kept."""
    await session.chat(f'/tool long_task {{"steps": {MAX_COMMIT_SPANS + 20}, "pause": 0}}')
    timings = turn_timings((await events_until(session, "processing_done", timeout=30))[-1])
    assert timings.dropped > 0
    assert [s.kind for s in timings.spans if s.kind != "commit"] == ["model", "tool", "model"], timings.dropped


async def test_a_turn_counts_no_commit_of_a_background_call_started_by_an_earlier_turn(
    session: LiveSession,
) -> None:
    """A turn's commit spans are its own: not those of a background call (started by an earlier turn) reporting
    progress meanwhile, nor of the earlier turn's title."""
    steps, pause = 8, 0.05
    await session.chat(f'/tool background_task {{"steps": {steps}, "pause": {pause}}}', request_id="r1")
    first = await events_until(session, "processing_done")
    await session.chat("count to 20", request_id="r2")  # ~1 s of streaming, while the call reports progress
    events = await events_until(session, "processing_done", after=first[-1].seq)
    second = next(e for e in events if e.data["type"] == "processing_done" and e.data.get("request_id") == "r2")
    commits = [s.model_extra for s in turn_timings(second).spans if s.kind == "commit"]
    # its own: the one storing its start (a text-only turn commits nothing else before its end)
    assert commits == [{"messages": 2, "events": 2}], commits
    await events_until(session, "tool_complete", after=first[-1].seq)


def test_a_client_reads_the_timings_of_a_server_that_times_one_more_kind() -> None:
    """A newer server may time more kinds of spans: an older client reads them, not raises."""
    read = Timings.model_validate({"ms": 1.0, "spans": [{"kind": "wallet", "name": "w", "start_ms": 0.0, "ms": 1.0}]})
    assert read.spans[0].kind == "wallet"
