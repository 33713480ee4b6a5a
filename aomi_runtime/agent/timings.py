"""Where a turn's time went: the spans recorded while it runs (each model call, tool call and store commit), stored
on the turn's `processing_done` event as `timings`.

The recorder is plain Python on `time.perf_counter`: two clock reads and a tuple per span, no await, and the JSON is
built once, when the turn ends. It knows nothing of OpenTelemetry, but its spans map onto one span each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

MAX_SPANS = 256  # a turn that calls tools in a loop must not grow its event without bound

SpanKind = Literal["model", "tool", "commit"]


class Span(BaseModel):
    """One span of a turn's `timings`, as clients read it. Extras by kind: `model` has `first_token_ms` (when a
    chunk came); `tool` has `call_id`, `topic`, `status` ("ok" or "error") and `background` (true for a call
    that only queued); `commit` has `messages` and `events` (how many it stored)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: SpanKind
    name: str
    start_ms: float  # from the turn's start (its `processing_started`)
    ms: float


class Timings(BaseModel):
    """A turn's `timings`: its duration, its spans by start, and how many spans past `MAX_SPANS` were dropped."""

    model_config = ConfigDict(frozen=True)

    ms: float
    spans: list[Span]
    dropped: int = 0


class TurnTimings:
    """The recorder of one turn, started when the turn starts; `span` times a block as one span."""

    __slots__ = ("_dropped", "_limit", "_origin", "_spans")

    def __init__(self, limit: int = MAX_SPANS) -> None:
        self._origin = time.perf_counter()
        self._spans: list[tuple[float, float, SpanKind, str, dict[str, Any]]] = []
        self._dropped = 0
        self._limit = limit

    @contextmanager
    def span(self, kind: SpanKind, name: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Time the block as one span; the block may add extras to the dict it is handed. The span is kept however
        the block ends (an interrupted turn shows what ran until then)."""
        started = time.perf_counter()
        try:
            yield extra
        finally:
            if len(self._spans) < self._limit:
                self._spans.append((started, time.perf_counter(), kind, name, extra))
            else:
                self._dropped += 1

    def as_json(self) -> dict[str, Any]:
        """The `timings` of `processing_done`: the turn's duration up to now, and its spans ordered by start."""
        total = _ms(time.perf_counter() - self._origin)
        spans = [
            {"kind": kind, "name": name, "start_ms": _ms(start - self._origin), "ms": _ms(end - start), **extra}
            for start, end, kind, name, extra in sorted(self._spans, key=lambda s: s[0])
        ]
        return {"ms": total, "spans": spans, **({"dropped": self._dropped} if self._dropped else {})}


def elapsed_ms(since: float) -> float:
    """Milliseconds from the `time.perf_counter` reading `since` to now, as spans' extras give times."""
    return _ms(time.perf_counter() - since)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
