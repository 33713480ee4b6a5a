"""The OTLP export's set-up and stop in this process (`backends/otlp.py`), against a collector that cannot be
reached: the stop of a session actor or a replica must not wait on the exporter's retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from aomi_runtime.agent.tracing import tracer
from aomi_runtime.backends.otlp import STOP_THREAD, start_tracing, stop_tracing_within
from tests.conftest import free_port

BUDGET = 0.5


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OTEL variables naming a port nothing listens on (connections refused: the exporter retries for 10 s)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    yield
    for thread in threading.enumerate():  # the stop goes on on its own, bounded by the exporter's timeout
        if thread.name == STOP_THREAD:
            thread.join(timeout=15)
            assert not thread.is_alive()


async def test_the_stop_waits_its_budget_at_most_when_the_collector_cannot_be_reached(unreachable: None) -> None:
    assert start_tracing("test")
    traced = tracer()
    assert traced is not None
    traced.start_span("unsent").end()
    started = time.monotonic()
    await stop_tracing_within(BUDGET)
    assert time.monotonic() - started < BUDGET + 0.5
    assert tracer() is None  # none made from now on
