"""The `ModelProvider` contract, run against the scripted model and, through their official SDKs, the
OpenAI-compatible and Anthropic providers talking to a local server that speaks each wire protocol."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from aomi_runtime.agent.apps import App, AppSpec, ModelSpec
from aomi_runtime.agent.errors import ModelUnavailable
from aomi_runtime.agent.protocols import (
    ModelChunk,
    ModelMessage,
    ModelProvider,
    ModelRequest,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    Usage,
)
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.agent.titles import TITLE_INSTRUCTION
from aomi_runtime.backends.history import InMemoryHistory
from aomi_runtime.backends.models import load_model
from tests.agent.test_session import events_until
from tests.conftest import free_port
from tests.fake_provider import FakeProvider

TOOLS = [ToolSpec(name="time_now", description="The time.", parameters={"type": "object", "properties": {}})]


def spec(kind: str, base: str, **fields: Any) -> ModelSpec:
    if kind == "scripted":
        return ModelSpec(label="Scripted", slug="scripted", options={"count_pause": 0, "chunk_pause": 0})
    url = f"{base}/v1" if kind == "openai" else base
    options = {"label": kind, "slug": kind, "provider": kind, "model": f"contract-{kind}", "base_url": url}
    return ModelSpec(**{**options, "timeout_seconds": 2, "max_retries": 2, **fields})


@pytest.fixture(params=["scripted", "openai", "anthropic"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opened() -> AsyncIterator[Callable[[ModelSpec], ModelProvider]]:
    """Builds providers as `load_model` does, and closes each at the test's end, as their owner would."""
    made: list[ModelProvider] = []

    def open_model(model: ModelSpec) -> ModelProvider:
        made.append(load_model(model, "sk-test"))
        return made[-1]

    try:
        yield open_model
    finally:
        for provider in made:
            await provider.aclose()


@pytest.fixture
def provider(
    kind: str, fake_provider: tuple[FakeProvider, str], opened: Callable[[ModelSpec], ModelProvider]
) -> ModelProvider:
    return opened(spec(kind, fake_provider[1]))


def connections_to(base: str) -> list[Any]:
    """This process's open TCP connections to the server at `base`."""
    port = urlsplit(base).port
    return [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port]


def phrase(kind: str, what: str) -> str:
    """The same intent, as each model is told it."""
    scripted = {"tool": '/tool time_now {"topic": "clock", "n": [1, 2]}', "fail": "/error fail"}
    remote = {"tool": 'call time_now {"topic": "clock", "n": [1, 2]}', "fail": "fail"}
    return (scripted if kind == "scripted" else remote).get(what, what)


async def reply(provider: ModelProvider, *messages: ModelMessage, system: str = "Be brief.") -> list[ModelChunk]:
    request = ModelRequest(system=system, messages=list(messages), tools=TOOLS)
    return [chunk async for chunk in provider.stream(request)]


def text(chunks: list[ModelChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def test_text_streams_in_pieces(kind: str, provider: ModelProvider) -> None:
    chunks = await reply(provider, ModelMessage(role="user", content="hello there"))
    assert len([c for c in chunks if isinstance(c, TextDelta)]) > 1
    assert text(chunks) == ('You said: "hello there"' if kind == "scripted" else "Echo: hello there")


async def test_a_tool_call_comes_whole_with_its_arguments(kind: str, provider: ModelProvider) -> None:
    chunks = await reply(provider, ModelMessage(role="user", content=phrase(kind, "tool")))
    calls = [c for c in chunks if isinstance(c, ToolCallRequest)]
    assert len(calls) == 1
    assert (calls[0].name, calls[0].arguments) == ("time_now", {"topic": "clock", "n": [1, 2]})
    assert calls[0].call_id


@pytest.mark.parametrize("what", ["hello there", "tool"])
async def test_a_remote_model_reports_its_usage_last(
    kind: str, what: str, provider: ModelProvider, fake_provider: tuple[FakeProvider, str]
) -> None:
    """The tokens the provider reports (OpenAI's only when asked for), as the last chunk; the scripted model has
    none to report."""
    fake = fake_provider[0]
    sent = len(fake.usage_sent)
    chunks = await reply(provider, ModelMessage(role="user", content=phrase(kind, what)))
    usages = [c for c in chunks if isinstance(c, Usage)]
    if kind == "scripted":
        assert usages == []
        return
    (tokens_in, tokens_out), *_ = fake.usage_sent[sent:]
    assert chunks[-1] == usages[0] == Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    assert tokens_in > 10 and tokens_out > 0


async def test_after_a_tool_result_it_answers_about_it(kind: str, provider: ModelProvider) -> None:
    call = ToolCallRequest(call_id="call_9", name="time_now", arguments={})
    history = [
        ModelMessage(role="user", content=phrase(kind, "tool")),
        ModelMessage(role="assistant", tool_calls=[call]),
        ModelMessage(role="tool", content="12:00", tool_call_id="call_9", name="time_now"),
    ]
    said = text(await reply(provider, *history))
    assert said == ("The time_now tool returned: 12:00" if kind == "scripted" else "Tool said: 12:00")


async def test_aclose_releases_the_connections_it_holds(
    kind: str, provider: ModelProvider, fake_provider: tuple[FakeProvider, str]
) -> None:
    await reply(provider, ModelMessage(role="user", content="hello there"))
    if kind != "scripted":  # the SDK's client keeps its connection for the next request
        assert connections_to(fake_provider[1])
    await provider.aclose()
    assert connections_to(fake_provider[1]) == []
    await provider.aclose()  # twice is harmless: an owner closing in a `finally` may find it closed


async def test_a_failure_is_a_readable_model_unavailable(kind: str, provider: ModelProvider) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        await reply(provider, ModelMessage(role="user", content=phrase(kind, "fail")))
    message = str(caught.value)
    assert ("as asked: fail" in message) if kind == "scripted" else ("answered 500" in message)
    assert "sk-test" not in message


@pytest.mark.parametrize("remote", ["openai", "anthropic"])
async def test_the_request_carries_the_system_prompt_tools_and_history(
    remote: str, fake_provider: tuple[FakeProvider, str], opened: Callable[[ModelSpec], ModelProvider]
) -> None:
    fake, base = fake_provider
    model = opened(spec(remote, base, model=f"seen-{remote}"))
    await reply(model, ModelMessage(role="user", content="hi"), system="You are terse.")
    (sent,) = fake.requests_for(f"seen-{remote}")
    if remote == "openai":
        assert sent["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
        assert [t["function"]["name"] for t in sent["tools"]] == ["time_now"]
    else:
        assert sent["system"] == "You are terse."
        assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        assert [t["name"] for t in sent["tools"]] == ["time_now"]
    assert sent["stream"] is True


@pytest.mark.parametrize("remote", ["openai", "anthropic"])
async def test_a_429_is_retried_with_backoff(
    remote: str, fake_provider: tuple[FakeProvider, str], opened: Callable[[ModelSpec], ModelProvider]
) -> None:
    fake, base = fake_provider
    model = opened(spec(remote, base, model=f"busy-{remote}"))
    assert text(await reply(model, ModelMessage(role="user", content="busy"))) == "Not busy now"
    assert len(fake.requests_for(f"busy-{remote}")) == 2


@pytest.mark.parametrize("remote", ["openai", "anthropic"])
async def test_a_hanging_provider_times_out(
    remote: str, fake_provider: tuple[FakeProvider, str], opened: Callable[[ModelSpec], ModelProvider]
) -> None:
    model = opened(spec(remote, fake_provider[1], timeout_seconds=0.5, max_retries=0))
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"did not answer within 0\.5 s"):
        await reply(model, ModelMessage(role="user", content="hang"))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("remote", ["openai", "anthropic"])
async def test_an_unreachable_provider_says_so(remote: str, opened: Callable[[ModelSpec], ModelProvider]) -> None:
    model = opened(spec(remote, f"http://127.0.0.1:{free_port()}", max_retries=0))
    with pytest.raises(ModelUnavailable, match="could not be reached"):
        await reply(model, ModelMessage(role="user", content="hello"))


# --- the automatic title, through each provider ------------------------------------------------------------


@pytest.mark.parametrize(("remote", "who"), [("openai", "GPT"), ("anthropic", "Claude")])
async def test_a_session_on_a_remote_model_gets_the_title_the_model_gave(
    remote: str, who: str, fake_provider: tuple[FakeProvider, str], opened: Callable[[ModelSpec], ModelProvider]
) -> None:
    fake, base = fake_provider
    model = spec(remote, base, model=f"titled-{remote}")
    app_spec = AppSpec(name="default", models=(model,))
    provider = opened(model)
    app = App(spec=app_spec, providers={model.slug: provider}, tools=app_spec.tool_registry)
    session = await LiveSession.create(app, InMemoryHistory(), f"titled-{remote}")
    try:
        await session.chat("plan a trip to Lisbon")
        events = await events_until(session, "title_changed")
        # The model's answer was `"<who> title: plan a trip to Lisbon."` and a second line: quotes, period and the
        # second line are gone.
        assert events[-1].data["new_title"] == f"{who} title: plan a trip to Lisbon"
        assert (await session.snapshot()).title == f"{who} title: plan a trip to Lisbon"
        turn, title_request = fake.requests_for(f"titled-{remote}")
        system = title_request["system"] if remote == "anthropic" else title_request["messages"][0]["content"]
        assert system == TITLE_INSTRUCTION and TITLE_INSTRUCTION not in str(turn)
    finally:
        await session.close()
