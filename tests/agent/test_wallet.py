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
from aomi_runtime.agent.errors import InvalidInput
from aomi_runtime.agent.protocols import ModelChunk, ModelRequest
from aomi_runtime.agent.records import Message
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.agent.tools import Tool, ToolContext, ToolRegistry, tool
from aomi_runtime.backends.history import InMemoryHistory
from aomi_runtime.backends.models import ScriptedModel
from tests.agent.test_session import events_until, types
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


@pytest.fixture(autouse=True)
async def gate() -> None:
    Gate.opened = asyncio.Event()


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
    return closing(await LiveSession.create(app_with(model, waits_then_wakes, pays_later), history, "w1"))


async def idle(session: LiveSession) -> None:
    await eventually(lambda: not session.is_processing)


async def test_a_transaction_request_is_staged_announced_and_ends_the_turn(session: LiveSession) -> None:
    await session.chat(SEND)
    await idle(session)
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
    await session.chat(SEND)
    await idle(session)
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
    await session.chat(SEND)
    await idle(session)
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
    await session.chat(SEND)
    await idle(session)
    await session.close()
    stored = await history.load("default", "w1")
    assert stored is not None
    again = closing(await LiveSession.restore(app_with(model, waits_then_wakes, pays_later), history, stored))
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
        "result": {"steps": 2, "status": "done"},
    }
    await eventually(lambda: not session.is_busy)  # no turn started by itself: the tool did not ask for one
    asked = len(model.requests)
    await session.chat("and?")
    await idle(session)
    seen = [m.content for m in model.requests[asked].messages if m.role == "system"]
    assert seen and queued["id"] in seen[-1] and '"status": "done"' in seen[-1]


async def test_a_failing_background_call_ends_with_an_error(session: LiveSession) -> None:
    await session.chat('/tool background_task {"steps": 1, "pause": 0, "fail": true}')
    events = await events_until(session, "tool_complete")
    assert events[-1].data["result"] == {"error": "RuntimeError: background_task failed, as asked"}


async def test_a_background_call_may_start_a_turn_and_keeps_the_session_busy(session: LiveSession) -> None:
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


async def test_a_background_call_cut_short_by_its_session_stopping_ends_with_an_error(
    session: LiveSession, history: InMemoryHistory, model: RecordingModel, closing: Callable[[LiveSession], LiveSession]
) -> None:
    await session.chat("/tool waits_then_wakes")
    await events_until(session, "tool_update")
    await session.close()  # as a killed actor: the call never ended
    stored = await history.load("default", "w1")
    assert stored is not None and [b.call.name for b in stored.record.background] == ["waits_then_wakes"]
    again = closing(await LiveSession.restore(app_with(model, waits_then_wakes, pays_later), history, stored))
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
