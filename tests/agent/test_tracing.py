"""A turn's OpenTelemetry spans, read with the SDK's in-memory exporter from a session run in this process: made from
the turn's timings (the same spans, times and extras as its `processing_done`), under the span that started it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aomi_runtime.agent.apps import App, AppSpec, ModelSpec
from aomi_runtime.agent.demo_tools import DEMO_TOOLS
from aomi_runtime.agent.session import LiveSession
from aomi_runtime.agent.timings import Timings
from aomi_runtime.agent.tools import ToolRegistry
from aomi_runtime.agent.tracing import TRACER_NAME, use_tracer
from aomi_runtime.backends.history import InMemoryHistory
from aomi_runtime.backends.models import load_model
from tests.agent.test_session import events_until
from tests.fake_provider import FakeProvider

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"
SLUG = "fake-gpt"
ROUNDING_MS = 0.05 + 1e-6  # the timings' times are rounded to 0.1 ms


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """The spans this process makes while the test runs, as an exporter receives them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer(provider.get_tracer(TRACER_NAME))
    try:
        yield exporter
    finally:
        use_tracer(None)
        provider.shutdown()


@pytest.fixture
async def session(
    history: InMemoryHistory,
    closing: Callable[[LiveSession], LiveSession],
    fake_provider: tuple[FakeProvider, str],
) -> AsyncIterator[LiveSession]:
    """A session of an App whose model is OpenAI's protocol at the fake provider, which reports its usage."""
    model = ModelSpec(label="Fake", slug=SLUG, provider="openai", model="trace-gpt", base_url=f"{fake_provider[1]}/v1")
    spec = AppSpec(name="traced", models=(model,))
    provider = load_model(model, "sk-test")
    app = App(spec=spec, providers={SLUG: provider}, tools=ToolRegistry.from_names(spec.tools, DEMO_TOOLS))
    try:
        yield closing(await LiveSession.create(app, history, "t1"))
    finally:
        await provider.aclose()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def ms(ns: int) -> float:
    return ns / 1e6


async def test_a_tool_turns_spans_are_its_timings_under_the_request_that_started_it(
    session: LiveSession, exported: InMemorySpanExporter, fake_provider: tuple[FakeProvider, str]
) -> None:
    fake = fake_provider[0]
    sent = len(fake.usage_sent)
    await session.chat('call long_task {"steps": 2, "pause": 0.01}', request_id="r1", traceparent=TRACEPARENT)
    done = (await events_until(session, "processing_done"))[-1]
    timings = Timings.model_validate(done.data["timings"])
    spans = exported.get_finished_spans()

    # one turn, a child of the span that started it (in another process: remote)
    (turn,) = by_name(spans, "turn")
    assert turn.parent is not None and turn.parent.is_remote
    assert (f"{turn.parent.trace_id:032x}", f"{turn.parent.span_id:016x}") == (TRACE_ID, PARENT)
    assert {f"{s.context.trace_id:032x}" for s in spans} == {TRACE_ID}
    assert dict(turn.attributes or {}) == {
        "session.id": "t1",
        "aomi.app": "traced",
        "aomi.request_id": "r1",
        "aomi.turn.follow_up": False,
    }
    assert turn.status.status_code == StatusCode.UNSET

    # the model calls, with the usage the provider reported
    models = by_name(spans, f"chat {SLUG}")
    assert len(models) == 2  # the tool call, then the answer
    usage = [
        ((m.attributes or {}).get("gen_ai.usage.input_tokens"), (m.attributes or {}).get("gen_ai.usage.output_tokens"))
        for m in models
    ]
    assert usage == fake.usage_sent[sent : sent + 2]  # the title's call comes after the turn
    assert all((m.attributes or {})["gen_ai.request.model"] == SLUG for m in models)

    # the tool call, and its progress commits inside it
    (tool,) = by_name(spans, "execute_tool long_task")
    assert {k: v for k, v in (tool.attributes or {}).items() if k.startswith("gen_ai.") or k == "aomi.tool.status"} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "long_task",
        "gen_ai.tool.call.id": "call_fake",
        "aomi.tool.status": "ok",
    }
    commits = by_name(spans, "commit")
    assert tool.context is not None and turn.context is not None
    in_tool = [c for c in commits if c.parent is not None and c.parent.span_id == tool.context.span_id]
    assert len(in_tool) == 2  # the two progress updates
    assert all(s.parent is not None and s.parent.span_id == turn.context.span_id for s in [*models, tool])
    assert all(c in in_tool or (c.parent and c.parent.span_id == turn.context.span_id) for c in commits)

    # the very spans of `timings`: kind, name, start and duration, and the extras as attributes
    children = sorted((s for s in spans if s is not turn), key=lambda s: s.start_time or 0)
    assert turn.start_time is not None and turn.end_time is not None
    assert abs(ms(turn.end_time - turn.start_time) - timings.ms) <= ROUNDING_MS
    assert len(children) == len(timings.spans)
    for otel, timed in zip(children, timings.spans, strict=True):
        attributes = otel.attributes or {}
        assert otel.start_time is not None and otel.end_time is not None
        assert attributes["aomi.span.kind"] == timed.kind
        assert abs(ms(otel.start_time - turn.start_time) - timed.start_ms) <= ROUNDING_MS, (otel.name, timed)
        assert abs(ms(otel.end_time - otel.start_time) - timed.ms) <= ROUNDING_MS, (otel.name, timed)
        extra = timed.model_extra or {}
        if timed.kind == "model":
            assert extra["input_tokens"] == attributes["gen_ai.usage.input_tokens"]
            assert extra["first_token_ms"] == attributes["aomi.first_token_ms"]
        if timed.kind == "commit":
            assert (extra["messages"], extra["events"]) == (
                attributes["aomi.commit.messages"],
                attributes["aomi.commit.events"],
            )


async def test_a_queued_turn_is_a_child_of_its_own_request_and_a_failed_call_is_an_error(
    session: LiveSession, exported: InMemorySpanExporter
) -> None:
    await session.chat('call long_task {"steps": 1, "pause": 0.2}', request_id="r1", traceparent=TRACEPARENT)
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    await session.chat("call always_fails", request_id="r2", traceparent=other)  # queued behind the first
    after = (await events_until(session, "processing_done"))[-1].seq
    await events_until(session, "processing_done", after=after)
    turns = by_name(exported.get_finished_spans(), "turn")
    assert [(t.attributes or {})["aomi.request_id"] for t in turns] == ["r1", "r2"]
    parents = [(f"{t.parent.trace_id:032x}", f"{t.parent.span_id:016x}") for t in turns if t.parent]
    assert parents == [(TRACE_ID, PARENT), ("1" * 32, "2" * 16)]
    (failed,) = by_name(exported.get_finished_spans(), "execute_tool always_fails")
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.context.trace_id == int("1" * 32, 16)


async def test_a_turn_the_model_failed_is_an_error_and_a_turn_with_no_parent_starts_a_trace(
    session: LiveSession, exported: InMemorySpanExporter
) -> None:
    await session.chat("fail")
    await events_until(session, "processing_done")
    (turn,) = by_name(exported.get_finished_spans(), "turn")
    assert turn.parent is None and turn.status.status_code == StatusCode.ERROR
    assert "aomi.request_id" not in (turn.attributes or {})
