"""A turn's OpenTelemetry spans, made from its `TurnTimings` when it ends: the same spans, times and extras as the
`timings` of its `processing_done` (which the console's waterfall draws), so there is one record of a turn's time.

Only OpenTelemetry's API is used here, and only once a tracer is set (`use_tracer`: `backends.otlp` sets one in a
process that exports, a test its own): with none, each function returns at once and nothing of OpenTelemetry is
imported. A turn's spans are made after it ends, with the recorded times, so tracing adds nothing while it runs.

A turn's parent is the span of the HTTP request that started it, in another process (the ingress replica): its W3C
`traceparent` travels with the call to the session actor, a string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .timings import TurnTimings

if TYPE_CHECKING:  # the API is imported only by a process that traces
    from opentelemetry.trace import Span, Tracer

_tracer: Tracer | None = None

TRACER_NAME = "aomi_runtime"

# The recorder's extras as span attributes: OpenTelemetry's GenAI names where they have one (usage, tool calls).
ATTRIBUTES = {
    "model": {
        "input_tokens": "gen_ai.usage.input_tokens",
        "output_tokens": "gen_ai.usage.output_tokens",
        "first_token_ms": "aomi.first_token_ms",
    },
    "tool": {
        "call_id": "gen_ai.tool.call.id",
        "topic": "aomi.tool.topic",
        "status": "aomi.tool.status",
        "background": "aomi.tool.background",
    },
    "commit": {"messages": "aomi.commit.messages", "events": "aomi.commit.events"},
}


def use_tracer(tracer: Tracer | None) -> None:
    """Make spans with `tracer` from now on in this process (None: make none)."""
    global _tracer
    _tracer = tracer


def tracer() -> Tracer | None:
    """The tracer in use, or None when this process does not trace."""
    return _tracer


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (an HTTP request's), to hand to another process; None if none."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def record_turn(
    timings: TurnTimings,
    *,
    traceparent: str | None,
    session_id: str,
    app: str,
    request_id: str | None = None,
    follow_up: bool = False,
    error: str | None = None,
    interrupted: bool = False,
) -> None:
    """Make the spans of a turn that ended: `turn` (child of `traceparent`'s span, if given), and under it one span
    per span of `timings`; a commit made while a tool call ran (its progress) is a child of that call's span."""
    if _tracer is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    turn_start, turn_end = timings.wall_ns()
    attributes: dict[str, Any] = {"session.id": session_id, "aomi.app": app, "aomi.turn.follow_up": follow_up}
    if request_id:
        attributes["aomi.request_id"] = request_id
    if interrupted:
        attributes["aomi.turn.interrupted"] = True
    if timings.dropped:
        attributes["aomi.spans.dropped"] = timings.dropped
    turn = _tracer.start_span("turn", parent, SpanKind.INTERNAL, attributes, start_time=turn_start)
    if error is not None:
        turn.set_status(Status(StatusCode.ERROR, error))
    inside = set_span_in_context(turn)
    tools: list[tuple[int, int, Span]] = []  # open to commits inside them
    for start, end, kind, name, extra in timings.wall_spans():  # by start: a tool's span comes before its commits
        context = inside
        if kind == "commit":
            holder = next((s for a, b, s in reversed(tools) if a <= start and end <= b), None)
            context = set_span_in_context(holder) if holder is not None else inside
        attributes = _attributes(kind, name, extra)
        span = _tracer.start_span(_span_name(kind, name), context, attributes=attributes, start_time=start)
        if kind == "tool" and extra.get("status") == "error":
            span.set_status(Status(StatusCode.ERROR))
        if kind == "tool":
            tools.append((start, end, span))
        span.end(end_time=end)
    turn.end(end_time=turn_end)


def _span_name(kind: str, name: str) -> str:
    # GenAI's span names: "{operation} {model or tool}".
    if kind == "model":
        return f"chat {name}"
    if kind == "tool":
        return f"execute_tool {name}"
    return name


def _attributes(kind: str, name: str, extra: dict[str, Any]) -> dict[str, Any]:
    known = ATTRIBUTES.get(kind, {})
    out: dict[str, Any] = {"aomi.span.kind": kind}
    if kind == "model":
        out |= {"gen_ai.operation.name": "chat", "gen_ai.request.model": name}
    elif kind == "tool":
        out |= {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    for key, value in extra.items():
        if value is not None:
            out[known.get(key, f"aomi.{kind}.{key}")] = value
    return out
