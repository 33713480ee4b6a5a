"""Export of the runtime's spans over OTLP/HTTP, set up in each process that makes them (an ingress replica, a session
actor) when OpenTelemetry's standard variables name where to send them: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT`. The SDK reads the rest itself (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
`..._COMPRESSION`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`). Without them nothing of the SDK
is imported, and no exporter thread runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..agent.tracing import TRACER_NAME, use_tracer

ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SERVICE_NAME = "aomi-runtime"  # unless OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise
FLUSH_MILLIS = 5000

_provider: Any = None  # this process's TracerProvider, once set up


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `environ` asks for spans to be exported: an OTLP endpoint set, and the SDK not turned off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_ENV)


def tracing_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The OpenTelemetry variables of `environ` (`OTEL_*`), for processes that do not inherit it."""
    return {name: value for name, value in environ.items() if name.startswith("OTEL_")}


def start_tracing(process: str) -> bool:
    """Export this process's spans if the environment asks for it (once per process); returns whether it does.
    `process` names the kind of process in the spans' resource (`aomi.process`: replica, session_actor)."""
    global _provider
    if _provider is not None:
        return True
    if not tracing_wanted():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"aomi.process": process})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):  # none given
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    # Not made the global provider: the runtime's spans are its own, whatever else the process traces.
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider
    use_tracer(provider.get_tracer(TRACER_NAME))
    return True


def stop_tracing() -> None:
    """Send the spans not sent yet, and stop the exporter: before the process is killed (an actor's `stop`)."""
    global _provider
    provider, _provider = _provider, None
    if provider is None:
        return
    use_tracer(None)
    provider.force_flush(FLUSH_MILLIS)
    provider.shutdown()
