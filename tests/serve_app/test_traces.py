"""Traces over OTLP/HTTP from the real runtime on Ray: the HTTP request's span from the ingress replica and its
turn's spans from the session's actor, in one trace, received by a local OTLP receiver; and with no OTEL variables,
nothing of OpenTelemetry's SDK in a session actor."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from aomi_runtime.actors.app_actors import app_namespace
from tests.conftest import TEST_NAMESPACE
from tests.fake_provider import FakeProvider
from tests.helpers import holders
from tests.otlp_receiver import ReceivedSpan, running_receiver
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import read_until
from tests.serve_app.test_restart import Server

CONFIG = """
apps:
  - name: default
    models:
      - {{label: Fake GPT, slug: fake-gpt, provider: openai, model: traced-gpt, base_url: "{base}/v1"}}
"""
TOOL_TURN = 'call long_task {"steps": 2, "pause": 0.01}'
WAIT_SECONDS = 60


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def turn_is_in(spans: list[ReceivedSpan]) -> bool:
    names = {s.name for s in spans}
    return {"POST /api/chat", "turn", "execute_tool long_task"} <= names


async def test_a_chat_requests_span_and_its_turns_spans_are_one_trace_over_otlp(
    tmp_path: Path, ray_tmp: str, fake_provider: tuple[FakeProvider, str]
) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text(CONFIG.format(base=fake_provider[1]))
    session_id = str(uuid.uuid4())
    with running_receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        server = Server(f"sqlite:///{tmp_path / 'aomi.db'}", ray_tmp, config, env=env, unset=("OTEL_SERVICE_NAME",))
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                answer = await client.post("/api/chat", params={"message": TOOL_TURN}, headers=h(session_id))
                assert answer.status_code == 200, answer.text
                done = await read_until(client, session_id, "processing_done")
            spans = receiver.wait_for(turn_is_in, WAIT_SECONDS)
        finally:
            assert server.stop() == 0, "".join(server.output)

    request = one(spans, "POST /api/chat")
    turn = one(spans, "turn")
    # one trace: the request's span (the replica's) the root, the turn (the session actor's) its child
    assert request.parent_span_id == "" and turn.parent_span_id == request.span_id
    trace = [s for s in spans if s.trace_id == request.trace_id]
    assert request.resource["aomi.process"] == "replica" and turn.resource["aomi.process"] == "session_actor"
    assert {s.resource["service.name"] for s in spans} == {"aomi-runtime"}
    assert request.attributes["http.route"] == "/api/chat" and request.attributes["http.response.status_code"] == 200
    assert request.attributes["session.id"] == session_id == turn.attributes["session.id"]
    assert turn.attributes["aomi.request_id"] == done.frames[-1][1]["request_id"]

    # under the turn: the model calls with their token counts, the tool call, the commits
    models = [s for s in trace if s.name == "chat fake-gpt"]
    tool = one(trace, "execute_tool long_task")
    commits = [s for s in trace if s.name == "commit"]
    assert len(models) == 2 and all(m.parent_span_id == turn.span_id for m in models)
    assert all(m.attributes["gen_ai.usage.input_tokens"] > 0 for m in models)
    assert all(m.attributes["gen_ai.usage.output_tokens"] > 0 for m in models)
    assert tool.parent_span_id == turn.span_id and tool.attributes["gen_ai.tool.call.id"] == "call_fake"
    assert len([c for c in commits if c.parent_span_id == tool.span_id]) == 2  # its progress
    assert len(commits) >= 5 and all(c.parent_span_id in (turn.span_id, tool.span_id) for c in commits)
    # the times of the turn's `timings` (rounded to 0.1 ms there)
    timings: dict[str, Any] = done.frames[-1][1]["timings"]
    assert abs((turn.end_ns - turn.start_ns) / 1e6 - timings["ms"]) <= 0.051
    assert len([s for s in trace if s.parent_span_id in (turn.span_id, tool.span_id)]) == len(timings["spans"])


async def test_without_otel_variables_a_session_actor_imports_no_sdk_and_runs_no_exporter(
    client: httpx.AsyncClient,
) -> None:

    session_id = sid()
    await client.post("/api/chat", params={"message": '/tool long_task {"steps": 1}'}, headers=h(session_id))
    await read_until(client, session_id, "processing_done")
    (actor,) = holders(app_namespace(TEST_NAMESPACE, "default"), session_id)
    # Run in the actor's process: what OpenTelemetry modules it imported, and its threads' names. A lambda, sent by
    # value: a function of this module would import the module there, and the receiver's OpenTelemetry with it.
    seen = lambda _actor: (  # noqa: E731
        sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        [t.name for t in threading.enumerate()],
    )
    modules, threads = await actor.__ray_call__.remote(seen)  # type: ignore[attr-defined]
    assert modules == [], modules
    assert not [t for t in threads if "Otel" in t or "Span" in t], threads
