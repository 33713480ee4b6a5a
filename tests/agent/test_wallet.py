"""Wallet requests and background tools, in a session without Ray: the in-memory backend and the scripted model
are real parts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aomi_runtime.agent.apps import DEFAULT_APP_SPEC, App, AppSpec
from aomi_runtime.agent.demo_tools import DEMO_TOOLS
from aomi_runtime.agent.errors import InvalidInput, StorageError
from aomi_runtime.agent.protocols import ModelChunk, ModelRequest
from aomi_runtime.agent.records import Message
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.agent.tools import Tool, ToolContext, ToolRegistry, tool
from aomi_runtime.agent.turn_queue import FOLLOW_UP_CUT_SHORT
from aomi_runtime.agent.wallet import outcome_text
from aomi_runtime.backends.history import InMemoryHistory
from aomi_runtime.backends.models import ScriptedModel
from aomi_runtime.backends.models.anthropic import to_anthropic_messages
from tests.agent.test_session import FailingHistory, events_until, types
from tests.helpers import eventually

SEND = '/tool send_eth {"to": "0xabc", "value": "1000"}'


def tx_complete(ids: list[int], status: str = "success", **extra: Any) -> str:
    payload = {"txHash": "0xfeed", "status": status, "pending_tx_ids": ids, **extra}
    return json.dumps({"type": "wallet:tx_complete", "payload": payload})


class RecordingModel(ScriptedModel):
    """The scripted model, keeping each request it was sent: what the model saw."""

    def __init__(self) -> None:
        super().__init__(count_pause=0.02)
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        if request.purpose == "turn":
            self.requests.append(request.model_copy(deep=True))
        async for chunk in super().stream(request):
            yield chunk


class Gate:
    opened: asyncio.Event  # made in each test's event loop (the `gate` fixture)
    stopped: asyncio.Event  # set by a tool its session's stop cancelled


@tool(background=True, starts_turn=True)
async def waits_then_wakes(args: dict[str, Any], ctx: ToolContext) -> str:
    """Reports once, then ends when the test opens the gate; its end starts a turn."""
    await ctx.progress({"step": 1, "of": 2})
    await Gate.opened.wait()
    return "woke"


@tool(background=True)
async def pays_later(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """A background call that asks the wallet: it cannot, its turn being over."""
    return await ctx.request_transaction(to="0xabc", value=1)


@tool()
async def pays_then_waits(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Asks the wallet, then goes on working until the test opens the gate: the request is stored meanwhile."""
    pending = await ctx.request_transaction(to="0xabc", value=1)
    await Gate.opened.wait()
    return pending


@tool(background=True, starts_turn=True)
async def ends_as_stopped(args: dict[str, Any], ctx: ToolContext) -> str:
    """Runs until the gate opens; stopped, it still ends with a result (its end races its session's close)."""
    try:
        await Gate.opened.wait()
    except asyncio.CancelledError:
        Gate.stopped.set()
        return "stopped"
    return "woke"


@pytest.fixture(autouse=True)
async def gate() -> None:
    Gate.opened, Gate.stopped = asyncio.Event(), asyncio.Event()


TEST_TOOLS = (waits_then_wakes, pays_later, pays_then_waits, ends_as_stopped)


def app_with(model: ScriptedModel, *extra: Tool) -> App:
    spec = AppSpec(name="default", tools=(*DEFAULT_APP_SPEC.tools, *(t.name for t in extra)))
    return App(
        spec=spec, providers={"scripted": model}, tools=ToolRegistry.from_names(spec.tools, [*DEMO_TOOLS, *extra])
    )


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
async def session(
    history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> LiveSession:
    return closing(await LiveSession.create(app_with(model, *TEST_TOOLS), history, "w1"))


async def idle(session: LiveSession) -> None:
    await eventually(lambda: not session.is_processing)


async def asked_to_send(session: LiveSession) -> None:
    """The model called `send_eth`: a request for wallet id 1 is pending, and no turn runs."""
    await session.chat(SEND)
    await idle(session)


async def test_a_transaction_request_is_staged_announced_and_ends_the_turn(session: LiveSession) -> None:
    await asked_to_send(session)
    snap = await session.snapshot({"address": "0xme", "pending_txs": {}, "theme": "dark"})
    staged = {"to": "0xabc", "value": "1000", "data": "0x", "chain_id": None, "label": "Send ETH"}
    assert snap.system_events == [
        {"InlineCall": {"type": "wallet_tx_request", "payload": {"tx_ids": [1], "tx_id": 1, **staged}}}
    ]
    # the client's own keys kept as sent; pending_txs is the runtime's, whatever the client sent
    assert snap.user_state == {"address": "0xme", "theme": "dark", "pending_txs": {"1": staged}}
    assert not snap.is_processing
    result = next(m for m in snap.messages if m.tool_result)
    assert json.loads(result.tool_result[1])["status"] == "pending"  # type: ignore[index]
    assert [m.content for m in snap.messages if m.sender == "agent" and m.content] == []  # no model step after it


async def test_the_outcome_becomes_the_tool_result_and_a_follow_up_turn_answers_it(
    session: LiveSession, model: RecordingModel
) -> None:
    await asked_to_send(session)
    asked = len(model.requests)
    posted = await session.post_system(tx_complete([1]))
    assert posted.sender == "system" and json.loads(posted.content)["payload"]["txHash"] == "0xfeed"
    assert session.is_processing  # from the post until the follow-up ends
    await idle(session)
    snap = await session.snapshot()
    assert snap.user_state is None or "pending_txs" not in snap.user_state
    assert [m.sender for m in snap.messages].count("user") == 1  # the follow-up adds no user message
    assert "0xfeed" in snap.messages[-1].content and snap.messages[-1].sender == "agent"
    (seen,) = model.requests[asked:]
    assert seen.messages[-1].role == "tool" and "0xfeed" in seen.messages[-1].content  # the model sees the outcome

    # a duplicate is answered once: no second turn
    last = (await session.last_events(1))[0].seq
    assert (await session.post_system(tx_complete([1]))).content == tx_complete([1])
    assert not session.is_processing and (await session.last_events(1))[0].seq == last
    # another outcome for the answered request, or one for a request never made: refused
    with pytest.raises(InvalidInput, match="answered already"):
        await session.post_system(tx_complete([1], "failed"))
    with pytest.raises(InvalidInput, match=r"No wallet request of this session has the id\(s\) \[7\]"):
        await session.post_system(tx_complete([7]))


async def test_a_rejected_request_reaches_the_model_as_an_error(session: LiveSession) -> None:
    await asked_to_send(session)
    await session.post_system(tx_complete([1], "failed", error="User rejected the request"))
    await idle(session)
    snap = await session.snapshot()
    assert snap.messages[-1].content.startswith("The send_eth tool failed: User rejected")
    assert snap.user_state is None or not snap.user_state.get("pending_txs")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"status": "success"}, "pending_tx_ids"),
        ({"status": "maybe", "pending_tx_ids": [1]}, "status"),
        ({"status": "success", "pending_tx_ids": ["x"]}, "pending_tx_ids"),
        ("not an object", "JSON object"),
    ],
)
async def test_a_malformed_outcome_is_refused(session: LiveSession, payload: Any, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        await session.post_system(json.dumps({"type": "wallet:tx_complete", "payload": payload}))


async def test_a_signature_request_and_its_response(session: LiveSession) -> None:
    typed = {"domain": {"name": "Demo"}, "types": {}, "message": {"hello": "world"}}
    await session.chat(f"/tool sign_typed_data {json.dumps({'typed_data': typed, 'description': 'Log in'})}")
    await idle(session)
    snap = await session.snapshot()
    assert snap.system_events == [
        {
            "InlineCall": {
                "type": "wallet_eip712_request",
                "payload": {"typed_data": typed, "description": "Log in", "chain_id": None, "pending_eip712_id": "1"},
            }
        }
    ]
    assert snap.user_state == {
        "pending_eip712s": {"1": {"typed_data": typed, "description": "Log in", "chain_id": None}}
    }
    response = {"status": "success", "signature": "0x5161", "pending_eip712_id": "1"}
    await session.post_system(json.dumps({"type": "wallet_eip712_response", "payload": response}))
    await idle(session)
    snap = await session.snapshot()
    assert "0x5161" in snap.messages[-1].content and not (snap.user_state or {}).get("pending_eip712s")


async def test_a_pending_request_survives_the_session_stopping(
    session: LiveSession, history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    await asked_to_send(session)
    await session.close()
    stored = await history.load("default", "w1")
    assert stored is not None
    again = closing(await LiveSession.restore(app_with(model, *TEST_TOOLS), history, stored))
    assert (await again.snapshot({"address": "0xme"})).user_state == {
        "address": "0xme",
        "pending_txs": {"1": {"to": "0xabc", "value": "1000", "data": "0x", "chain_id": None, "label": "Send ETH"}},
    }
    await again.post_system(tx_complete([1]))
    assert again.is_processing
    await idle(again)
    assert "0xfeed" in (await again.snapshot()).messages[-1].content


async def test_a_background_call_answers_queued_reports_and_reaches_the_next_turn(
    session: LiveSession, model: RecordingModel
) -> None:
    await session.chat('/tool background_task {"steps": 2, "pause": 0.05}')
    await idle(session)
    snap = await session.snapshot()
    queued = json.loads(next(m for m in snap.messages if m.tool_result).tool_result[1])  # type: ignore[index]
    assert queued["status"] == "queued" and queued["id"].startswith("tool_")
    events = await events_until(session, "tool_complete")
    assert [e.data["result"] for e in events if e.data["type"] == "tool_update"] == [
        {"step": 1, "of": 2},
        {"step": 2, "of": 2},
    ]
    done = events[-1].data
    assert done == {
        "type": "tool_complete",
        "session_id": "w1",
        "id": queued["id"],
        "call_id": "call_1",
        "tool_name": "background_task",
        "status": "completed",
        "message": "background_task completed",
        "result": {"steps": 2, "status": "done"},
    }
    await eventually(lambda: not session.is_busy)  # no turn started by itself: the tool did not ask for one
    asked = len(model.requests)
    await session.chat("and?")
    await idle(session)
    # the result as the tool's, after its queued one: no system message (an Anthropic model's system prompt)
    sent = model.requests[asked].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool", "assistant", "tool", "user"]
    assert [m.content for m in sent if m.role == "tool"] == [json.dumps(queued), json.dumps(done["result"])]
    assert sent[3].content.startswith("The background_task tool returned")  # its answer to the queued result
    assert sent[3].tool_calls[0].call_id == "call_1_ended" == sent[4].tool_call_id


async def test_a_failing_background_call_ends_with_an_error(session: LiveSession) -> None:
    await session.chat('/tool background_task {"steps": 1, "pause": 0, "fail": true}')
    events = await events_until(session, "tool_complete")
    error = "RuntimeError: background_task failed, as asked"
    assert {k: events[-1].data[k] for k in ("status", "message", "result")} == {
        "status": "failed",
        "message": f"background_task failed: {error}",
        "result": {"error": error},
    }


async def test_a_background_call_may_start_a_turn_and_keeps_the_session_busy(
    session: LiveSession, model: RecordingModel
) -> None:
    await session.chat("/tool waits_then_wakes")
    await events_until(session, "tool_update")
    await idle(session)
    assert session.is_busy  # a running background call: not evicted as idle
    after = (await session.last_events(1))[0].seq
    Gate.opened.set()
    events = await events_until(session, "processing_done", after=after)
    assert types(events)[:2] == ["tool_complete", "message"] and "processing_started" in types(events)
    snap = await session.snapshot()
    assert "woke" in snap.messages[-1].content  # the model answered the result
    # As an Anthropic model is sent it: the result is the last turn's (the user's) tool result, in order, and
    # not in the system prompt (the follow-up would then end with the model's own message: a prefill).
    system, turns = to_anthropic_messages(model.requests[-1])
    assert "woke" not in system
    assert turns[-1]["role"] == "user" and turns[-1]["content"][-1]["type"] == "tool_result"
    assert turns[-1]["content"][-1]["content"] == "woke"


async def test_a_background_call_cut_short_by_its_session_stopping_ends_with_an_error(
    session: LiveSession, history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    await session.chat("/tool waits_then_wakes")
    await events_until(session, "tool_update")
    await session.close()  # as a killed actor: the call never ended
    stored = await history.load("default", "w1")
    assert stored is not None and [b.call.name for b in stored.record.background] == ["waits_then_wakes"]
    again = closing(await LiveSession.restore(app_with(model, *TEST_TOOLS), history, stored))
    ended = [e for e in await again.last_events(5) if e.type == "tool_complete"]
    assert ended[-1].data["result"]["error"].startswith("The background call was cut short")
    last: Message = (await again.snapshot()).messages[-1]
    assert last.sender == "system" and last.tool_result is not None and "cut short" in last.tool_result[1]
    assert again.record.background == [] and not again.is_busy


async def test_a_background_call_cannot_ask_the_wallet(session: LiveSession) -> None:
    await session.chat("/tool pays_later")
    events = await events_until(session, "tool_complete")
    assert events[-1].data["result"]["error"].startswith("InvalidInput: This tool runs where no wallet can be asked")
    assert session.record.wallet_requests == []


# --- a wallet outcome or a background result arriving around turns -------------------------------------------------


async def restored(history: InMemoryHistory, model: ScriptedModel, session_id: str = "w1") -> LiveSession:
    stored = await history.load("default", session_id)
    assert stored is not None
    return await LiveSession.restore(app_with(model, *TEST_TOOLS), history, stored)


async def test_an_interrupt_after_the_request_is_stored_keeps_the_call_so_its_outcome_is_answered_not_asked_again(
    session: LiveSession, model: RecordingModel
) -> None:
    await session.chat("/tool pays_then_waits")
    await eventually(lambda: session.record.wallet_requests)  # stored and announced; the tool still works
    await session.interrupt()  # before the tool returned: the call's result message is the one stored with it
    Gate.opened.set()
    asked = len(model.requests)
    await session.post_system(tx_complete([1]))
    await idle(session)
    (seen,) = model.requests[asked:]
    assert seen.messages[-1].role == "tool" and "0xfeed" in seen.messages[-1].content  # the outcome, as its result
    assert len(session.record.wallet_requests) == 1  # the user is not asked to pay twice
    assert "0xfeed" in (await session.snapshot()).messages[-1].content


async def test_an_outcome_posted_while_its_tool_still_runs_is_the_call_result_it_keeps(
    session: LiveSession, model: RecordingModel
) -> None:
    await session.chat("/tool pays_then_waits")
    await eventually(lambda: session.record.wallet_requests)
    await session.post_system(tx_complete([1]))  # the turn still runs: the follow-up waits behind it
    asked = len(model.requests)
    Gate.opened.set()  # the tool returns its pending result now, after the outcome
    await idle(session)
    snap = await session.snapshot()
    results = [m.tool_result[1] for m in snap.messages if m.tool_result is not None]
    assert len(results) == 1 and "0xfeed" in results[0]
    (seen,) = model.requests[asked:]
    assert seen.messages[-1].role == "tool" and "0xfeed" in seen.messages[-1].content


async def test_outcomes_posted_during_a_turn_start_one_follow_up(session: LiveSession, model: RecordingModel) -> None:
    await asked_to_send(session)
    await session.chat(SEND.replace("1000", "2000"))
    await idle(session)
    asked = len(model.requests)
    await session.chat("count to 10")
    await session.post_system(tx_complete([1]))
    await session.post_system(tx_complete([2]))
    await idle(session)
    counted, follow_up = model.requests[asked:]  # one turn answers both
    assert counted.messages[-1].content == "count to 10"
    assert [m.content for m in follow_up.messages if m.role == "tool"] == [
        outcome_text(json.loads(tx_complete([i]))["payload"]) for i in (1, 2)
    ]


async def test_a_user_message_queued_before_an_outcome_answers_it_and_no_follow_up_runs_after(
    session: LiveSession, model: RecordingModel
) -> None:
    await asked_to_send(session)
    asked = len(model.requests)
    await session.chat("count to 10")
    await session.chat("and now?")  # queued
    await session.post_system(tx_complete([1]))  # its follow-up queued behind "and now?"
    await idle(session)
    sent = model.requests[asked:]
    assert [r.messages[-1].content for r in sent] == ["count to 10", "and now?"]  # no third, ending in its answer
    assert any(m.role == "tool" and "0xfeed" in m.content for m in sent[1].messages)


async def test_a_chat_during_a_follow_up_gets_its_own_turn_after_it(
    session: LiveSession, model: RecordingModel
) -> None:
    await asked_to_send(session)
    model.chunk_pause = 0.05  # the follow-up takes a while
    after = (await session.last_events(1))[0].seq
    await session.post_system(tx_complete([1]))
    await events_until(session, "processing_started", after=after)
    snap = await session.chat("thanks", request_id="r-thanks")
    assert snap.messages[-1].queued and snap.messages[-1].content == "thanks"
    await idle(session)
    done = [e.data for e in await session.events_after(after, 0) if e.type == "processing_done"]
    assert [d.get("request_id") for d in done] == [None, "r-thanks"] and not any("error" in d for d in done)
    assert (await session.snapshot()).messages[-1].content == 'You said: "thanks"'


async def test_an_interrupt_during_a_follow_up_stops_it_and_keeps_the_outcome(
    session: LiveSession, model: RecordingModel
) -> None:
    await asked_to_send(session)
    model.chunk_pause = 0.05
    after = (await session.last_events(1))[0].seq
    await session.post_system(tx_complete([1]))
    await events_until(session, "processing_started", after=after)
    snap = await session.interrupt()
    assert not snap.is_processing
    (done,) = [e.data for e in await session.events_after(after, 0) if e.type == "processing_done"]
    assert done.get("interrupted") and "request_id" not in done
    result = next(m for m in snap.messages if m.tool_result is not None)
    assert "0xfeed" in result.tool_result[1]  # type: ignore[index]  # stored: the next turn's model reads it
    model.chunk_pause = 0
    await session.chat("so?")
    await idle(session)
    assert any(m.role == "tool" and "0xfeed" in m.content for m in model.requests[-1].messages)


async def test_a_follow_up_cut_short_by_its_session_stopping_runs_again_when_it_is_restored(
    session: LiveSession, history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    await asked_to_send(session)
    model.chunk_pause = 0.2
    asked = len(model.requests)
    await session.post_system(tx_complete([1]))
    await eventually(lambda: len(model.requests) > asked)  # the follow-up is in the model
    await session.close()  # as a killed actor
    again = closing(await restored(history, RecordingModel()))
    await idle(again)
    snap = await again.snapshot()
    assert "0xfeed" in snap.messages[-1].content and snap.messages[-1].sender == "agent"
    assert not any("SystemError" in e for e in snap.system_events)  # no "send the message again": there is none
    *_, cut, rerun = [e.data for e in await again.last_events(20) if e.type == "processing_done"]
    # the follow-up that ran again has its own timings; the end of the one cut short, written on restore, has none
    assert cut == {"type": "processing_done", "session_id": "w1", "error": FOLLOW_UP_CUT_SHORT}
    assert rerun.keys() == {"type", "session_id", "timings"} and rerun["timings"]["spans"][0]["kind"] == "commit"


async def test_a_background_call_ending_as_its_session_closes_keeps_its_follow_up(
    session: LiveSession, history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    await session.chat("/tool ends_as_stopped")
    await idle(session)
    await session.close()  # the call ends with a result while its session closes: the final commit stores both
    stored = await history.load("default", "w1")
    assert stored is not None and stored.record.background == []
    again = closing(await restored(history, model))
    await idle(again)
    assert (await again.snapshot()).messages[-1].content == "The ends_as_stopped tool returned: stopped"


async def test_a_session_given_up_stops_its_background_calls(
    model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    history = FailingHistory()
    session = closing(await LiveSession.create(app_with(model, *TEST_TOOLS), history, "w2"))
    await session.chat("/tool ends_as_stopped")
    await idle(session)
    history.up = False
    with pytest.raises(StorageError):
        await session.chat("lost")
    await asyncio.wait_for(Gate.stopped.wait(), 5)  # not running on beside the session's next holder


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"to": "0xabc", "value": "1 ETH"}, "`value` is wei"),
        ({"to": "0xabc", "value": -1}, "`value` is wei"),
        ({"to": "0xabc", "value": "１２"}, "`value` is wei"),  # full-width digits: not ASCII
        ({"to": "0xabc", "value": 1.5}, "`value` is wei"),
        ({"to": "0xabc", "value": "1", "chain_id": "1"}, "`chain_id` is an integer"),
        ({"to": "0xabc", "value": "1", "chain_id": True}, "`chain_id` is an integer"),
    ],
)
async def test_a_malformed_transaction_is_the_tool_s_error_and_nothing_is_staged(
    session: LiveSession, arguments: dict[str, Any], error: str
) -> None:
    await session.chat(f"/tool send_eth {json.dumps(arguments)}")
    await idle(session)
    result = next(m for m in (await session.snapshot()).messages if m.tool_result is not None)
    assert error in json.loads(result.tool_result[1])["error"]  # type: ignore[index]
    assert session.record.wallet_requests == []


async def test_an_interrupt_with_a_follow_up_queued_adds_no_message_for_it(
    session: LiveSession, model: RecordingModel
) -> None:
    await asked_to_send(session)
    await session.chat("count to 50")
    await session.post_system(tx_complete([1]))  # its follow-up waits behind the count
    snap = await session.interrupt()
    assert [m.content for m in snap.messages if m.sender == "user"] == [SEND, "count to 50"]
    assert not any(m.unanswered for m in snap.messages)
    asked = len(model.requests)
    await session.chat("so?")  # the outcome stayed stored: the next turn reads it
    await idle(session)
    assert any(m.role == "tool" and "0xfeed" in m.content for m in model.requests[asked].messages)
