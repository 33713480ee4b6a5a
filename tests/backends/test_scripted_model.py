"""The scripted model's phrases, as docs/apps.md documents them."""

from __future__ import annotations

import time

import pytest

from aomi_runtime.agent.errors import ModelUnavailable
from aomi_runtime.agent.protocols import ModelChunk, ModelMessage, ModelRequest, TextDelta, ToolCallRequest, ToolSpec
from aomi_runtime.backends.models import ScriptedModel


async def reply(model: ScriptedModel, *messages: ModelMessage, **request: object) -> list[ModelChunk]:
    return [c async for c in model.stream(ModelRequest(messages=list(messages), **request))]  # type: ignore[arg-type]


def user(text: str) -> ModelMessage:
    return ModelMessage(role="user", content=text)


async def test_count_to_n_streams_each_number_as_a_chunk_a_pause_apart() -> None:
    started = time.monotonic()
    chunks = await reply(ScriptedModel(count_pause=0.02), user("Count to 5"))
    assert [c.text for c in chunks if isinstance(c, TextDelta)] == ["1", " 2", " 3", " 4", " 5"]
    assert time.monotonic() - started >= 4 * 0.02


async def test_tool_phrase_calls_the_tool_with_its_json_arguments() -> None:
    chunks = await reply(ScriptedModel(), user('/tool long_task {"steps": 2}'))
    assert chunks == [ToolCallRequest(call_id="call_1", name="long_task", arguments={"steps": 2})]
    bad = await reply(ScriptedModel(), user("/tool long_task {not json"))
    assert "".join(c.text for c in bad if isinstance(c, TextDelta)).startswith("I could not read the arguments")


async def test_after_a_tool_result_it_speaks_of_the_result() -> None:
    ok = ModelMessage(role="tool", name="time_now", content="12:00", tool_call_id="c")
    failed = ModelMessage(role="tool", name="always_fails", content='{"error": "boom"}', tool_call_id="c")
    assert "".join(c.text for c in await reply(ScriptedModel(), ok) if isinstance(c, TextDelta)) == (
        "The time_now tool returned: 12:00"
    )
    assert "".join(c.text for c in await reply(ScriptedModel(), failed) if isinstance(c, TextDelta)) == (
        "The always_fails tool failed: boom"
    )


async def test_error_phrase_fails_the_model() -> None:
    with pytest.raises(ModelUnavailable, match="as asked: quota"):
        await reply(ScriptedModel(), user("/error quota"))


async def test_other_text_is_quoted_in_a_few_chunks() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = await reply(ScriptedModel(chunk_pause=0), user(text))
    assert "".join(c.text for c in chunks if isinstance(c, TextDelta)) == f'You said: "{text}"'
    assert 1 < len(chunks) <= 16


async def test_it_reports_its_tools_and_system_prompt_and_makes_titles() -> None:
    tools = [ToolSpec(name="a", description="", parameters={}), ToolSpec(name="b", description="", parameters={})]
    listed = await reply(ScriptedModel(), user("/tools"), tools=tools)
    assert "".join(c.text for c in listed if isinstance(c, TextDelta)) == "Tools: a, b"
    prompt = await reply(ScriptedModel(), user("/system"), system="Be brief.\n\nUser state: none sent.")
    assert "".join(c.text for c in prompt if isinstance(c, TextDelta)) == "Be brief.\n\nUser state: none sent."
    title = await reply(ScriptedModel(), user("what is the price of ETH today in dollars"), purpose="title")
    assert title == [TextDelta(text="What is the price of ETH")]
