"""The turn engine on its own: what the model is shown, and how its output becomes messages and events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aomi_runtime.agent.apps import App, AppSpec, Limits
from aomi_runtime.agent.demo_tools import DEMO_TOOLS
from aomi_runtime.agent.errors import ModelUnavailable
from aomi_runtime.agent.protocols import ModelChunk, ModelRequest, TextDelta, ToolCallRequest
from aomi_runtime.agent.records import Message, ToolCall
from aomi_runtime.agent.tools import ToolRegistry
from aomi_runtime.agent.turn import run_turn, summarize_user_state, to_model_messages
from tests.helpers import scripted_app


class RecordingSink:
    """A `TurnSink` that keeps what the turn produced, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def append_text(self, text: str) -> None:
        self.log.append(("text", text))

    async def end_text(self) -> None:
        self.log.append(("end_text", None))

    async def add_tool_result(self, call: ToolCall, topic: str, text: str) -> None:
        self.log.append(("tool_result", (call.name, topic, text)))

    async def emit(self, type_: str, **fields: Any) -> None:
        self.log.append((type_, fields.get("result")))

    async def stage_wallet_request(
        self, call: ToolCall, topic: str, kind: str, entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.log.append(("wallet", (call.name, kind, entries)))
        return {"status": "pending"}

    def start_background(self, call: ToolCall, topic: str, run: Any, starts_turn: bool) -> None:
        self.log.append(("background", call.name))


class LoopingModel:
    """A model that never stops calling tools, to test the App's limit on tool rounds."""

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        self.requests.append(request.model_copy(deep=True))
        yield TextDelta(text="again ")
        yield ToolCallRequest(call_id=f"c{len(self.requests)}", name="time_now", arguments={})

    async def aclose(self) -> None:
        """Holds nothing to release."""


def test_the_model_sees_each_tool_result_after_the_call_that_made_it() -> None:
    call = ToolCall(id="t1", call_id="c1", name="time_now", arguments={"topic": "clock"})
    history = [
        Message(id=0, sender="user", content="what time is it?"),
        Message(id=1, sender="agent", content="Let me look."),
        Message(id=2, sender="agent", tool_result=("clock", "12:00"), tool_call=call),
        Message(id=3, sender="agent", content="It is noon."),
        Message(id=4, sender="agent", content=""),
    ]
    shown = [(m.role, m.content, [c.name for c in m.tool_calls], m.tool_call_id) for m in to_model_messages(history)]
    assert shown == [
        ("user", "what time is it?", [], None),
        ("assistant", "Let me look.", ["time_now"], None),
        ("tool", "12:00", [], "c1"),
        ("assistant", "It is noon.", [], None),
    ]


@pytest.mark.parametrize(
    ("state", "summary"),
    [
        (None, "User state: none sent."),
        ({"address": "0x1", "chain_id": 1, "is_connected": True}, "User state: wallet 0x1, chain id 1, connected."),
        (
            {"walletAddress": "0x2", "chainId": 10, "isConnected": False},
            "User state: wallet 0x2, chain id 10, not connected.",
        ),
        (
            {"connection": {"status": "connected"}, "evm": {"address": "0x3", "chain_id": 8453}},
            "User state: wallet 0x3, chain id 8453, connected.",
        ),
        ({"theme": "dark"}, "User state: no wallet address, no chain id, not connected."),
    ],
)
def test_user_state_summary_reads_flat_camel_and_nested_forms(state: dict[str, Any] | None, summary: str) -> None:
    assert summarize_user_state(state) == summary


async def test_a_tool_call_becomes_events_then_a_result_then_more_text() -> None:
    sink = RecordingSink()
    history = [Message(id=0, sender="user", content="/tool time_now")]
    await run_turn(scripted_app(), sink, session_id="s", history=history)
    kinds = [k for k, _ in sink.log]
    # A quick tool reports no progress: its result is a message, with no tool_update/tool_complete events.
    assert kinds[:2] == ["end_text", "tool_result"]
    assert all(k == "text" for k in kinds[2:]) and kinds[2:]
    name, topic, text = sink.log[1][1]
    assert (name, topic) == ("time_now", "time_now")
    assert "".join(v for k, v in sink.log if k == "text") == f"The time_now tool returned: {text}"


async def test_a_model_that_keeps_calling_tools_is_stopped_at_the_apps_limit() -> None:
    spec = AppSpec(name="loop", tools=("time_now",), limits=Limits(max_tool_rounds=2))
    model = LoopingModel()
    app = App(spec=spec, providers={"scripted": model}, tools=ToolRegistry.from_names(spec.tools, DEMO_TOOLS))
    with pytest.raises(ModelUnavailable, match="more than 2 rounds"):
        await run_turn(app, RecordingSink(), session_id="s", history=[Message(id=0, sender="user", content="go")])
    assert len(model.requests) == 3
    assert [m.role for m in model.requests[-1].messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert [t.name for t in model.requests[0].tools] == ["time_now"]
