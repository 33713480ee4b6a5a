"""Where a turn's time went: the spans recorded while it runs (each model call, tool call and store commit), stored
on the turn's `processing_done` event as `timings`.

The recorder is plain Python on `time.perf_counter`: two clock reads and a tuple per span, no await, and the JSON is
built once, when the turn ends. It knows nothing of OpenTelemetry: `tracing.py` makes a span of each of its spans,
with the same times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# Per kind, so that a tool reporting progress in a loop (a commit per update) never crowds out the model and tool
# calls the timings are read for, and a turn's event stays small (about 25 KB at most).
MAX_CALL_SPANS = 128  # model and tool calls
MAX_COMMIT_SPANS = 128
MAX_NAME = 100  # characters of a span's name, topic or call id: the model chose them

SpanKind = Literal["model", "tool", "commit"]


class Span(BaseModel):
    """One span of a turn's `timings`, as clients read it. Extras by kind: `model` has `first_token_ms` (when a
    chunk came), and `input_tokens` and `output_tokens` where the provider reports its usage; `tool` has `call_id`,
    `topic`, `status` ("ok" or "error") and `background` (true for a call that only queued); `commit` has
    `messages` and `events` (how many it stored)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str  # model, tool or commit: a str, so that a client reads the spans of a server that times more kinds
    name: str
    start_ms: float  # from the turn's start (its `processing_started`)
    ms: float


class Timings(BaseModel):
    """A turn's `timings`: its duration, its spans by start, and how many spans past the caps were dropped."""

    model_config = ConfigDict(frozen=True)

    ms: float
    spans: list[Span]
    dropped: int = 0


class TurnTimings:
    """The recorder of one turn, started when the turn starts: `span` times a block as one span, `record` a span
    that started at a `time.perf_counter` reading and ends now."""

    __slots__ = ("_dropped", "_ended", "_left", "_origin", "_origin_ns", "_spans")

    def __init__(self, calls: int = MAX_CALL_SPANS, commits: int = MAX_COMMIT_SPANS) -> None:
        self._origin = time.perf_counter()
        self._origin_ns = time.time_ns()  # the wall clock at the origin, for spans exported with their times
        self._ended: float | None = None  # set by `as_json`: where the turn's duration ends
        self._spans: list[tuple[float, float, SpanKind, str, dict[str, Any]]] = []
        self._dropped = 0
        self._left = {"tool": calls, "commit": commits}  # model calls count with the tools

    @contextmanager
    def span(self, kind: SpanKind, name: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Time the block as one span; the block may add extras to the dict it is handed. The span is kept however
        the block ends (an interrupted turn shows what ran until then)."""
        started = time.perf_counter()
        try:
            yield extra
        finally:
            self.record(kind, name, started, **extra)

    def record(self, kind: SpanKind, name: str, started: float, **extra: Any) -> None:
        shared = "tool" if kind == "model" else kind
        if self._left[shared] <= 0:
            self._dropped += 1
            return
        self._left[shared] -= 1
        extra = {k: _short(v) for k, v in extra.items()}
        self._spans.append((started, time.perf_counter(), kind, _short(name), extra))

    def as_json(self) -> dict[str, Any]:
        """The `timings` of `processing_done`: the turn's duration up to now, and its spans ordered by start."""
        self._ended = time.perf_counter()
        total = _ms(self._ended - self._origin)
        spans = [
            {"kind": kind, "name": name, "start_ms": _ms(start - self._origin), "ms": _ms(end - start), **extra}
            for start, end, kind, name, extra in sorted(self._spans, key=lambda s: s[0])
        ]
        return {"ms": total, "spans": spans, **({"dropped": self._dropped} if self._dropped else {})}

    @property
    def dropped(self) -> int:
        return self._dropped

    def wall_ns(self) -> tuple[int, int]:
        """The turn's start and end (as `as_json` measured it, else now), in nanoseconds since the epoch."""
        return self._origin_ns, self._wall(self._ended if self._ended is not None else time.perf_counter())

    def wall_spans(self) -> Iterator[tuple[int, int, SpanKind, str, dict[str, Any]]]:
        """The spans as `as_json` gives them, by start, with their start and end in nanoseconds since the epoch."""
        for start, end, kind, name, extra in sorted(self._spans, key=lambda s: s[0]):
            yield self._wall(start), self._wall(end), kind, name, extra

    def _wall(self, reading: float) -> int:
        return self._origin_ns + round((reading - self._origin) * 1e9)


def elapsed_ms(since: float) -> float:
    """Milliseconds from the `time.perf_counter` reading `since` to now, as spans' extras give times."""
    return _ms(time.perf_counter() - since)


def _short(value: Any) -> Any:
    return value[:MAX_NAME] if isinstance(value, str) else value


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
