"""The span of each HTTP request an ingress replica answers, installed only when the replica traces
(`backends.otlp`): the parent of the turn a chat request starts, in the session's actor (`agent.tracing`).

A request that names a span in its own `traceparent` header continues that trace (a client's, a proxy's)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_HEADER = b"x-session-id"


class RequestSpans:
    """ASGI middleware: a SERVER span per request, named by method and route template (`POST /api/chat`), current
    while the request is handled, so that what it calls may hand its `traceparent` on."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        self.propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = self.propagator.extract(headers)
        method = scope["method"]
        attributes: dict[str, str] = {"http.request.method": method, "url.path": scope["path"]}
        if session_id := headers.get(SESSION_HEADER.decode()):
            attributes["session.id"] = session_id
        status = 0

        async def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            method, parent, SpanKind.SERVER, attributes, set_status_on_exception=True
        ) as span:
            try:
                await self.app(scope, receive, seen)
            finally:
                route = getattr(scope.get("route"), "path", None)  # set by the router, when one matched
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
