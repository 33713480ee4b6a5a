"""`GET /metrics`: Prometheus text from the standard client library.

Two sources: this replica's own request latencies, handle-cache hits and open streams (per replica, as a
Prometheus target usually is), and each App's actors (directory and store), asked at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..actors.runtime import Runtime

COUNTERS = {
    "created": "Sessions created new.",
    "loaded": "Sessions rebuilt from the history store (cold loads).",
    "evicted": "Sessions evicted from memory (their state stays stored).",
    "expired": "Sessions deleted by the retention sweep.",
}
HISTOGRAMS = {
    "load_seconds": ("aomi_session_load_seconds", "Time to make a session live: read, hand to an actor, open."),
    "turn_seconds": ("aomi_turn_seconds", "Time from a turn's start to its processing_done."),
    "write_seconds": ("aomi_store_write_seconds", "Time of one commit to the history database."),
    "batch_sizes": ("aomi_store_batch_rows", "Rows written in one commit: the record, messages and events."),
    "commits_per_transaction": (
        "aomi_store_commits_per_transaction",
        "Commits written in one database transaction (group commit of commits that arrive together).",
    ),
}


class Metrics:
    """One replica's metrics registry, and the scrape that adds the actors' counts to it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "aomi_request_seconds",
            "HTTP request latency to the response's start, by route.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.stream_subscribers = Gauge(
            "aomi_stream_subscribers", "Event streams open on this replica.", registry=self.registry
        )

    async def render(self, runtime: Runtime) -> bytes:
        stats = await runtime.stats()
        scrape = CollectorRegistry()
        scrape.register(_Snapshot(stats, {"replica": runtime.handle_counts, "snapshot": runtime.copies.counts}))
        return generate_latest(self.registry) + generate_latest(scrape)


class _Snapshot(Collector):
    def __init__(self, stats: Mapping[str, Mapping[str, Any]], caches: Mapping[str, Mapping[str, int]]) -> None:
        self._stats = stats
        self._caches = caches  # this replica's: actor handles ("replica"), copies of snapshots ("snapshot")

    def collect(self) -> Iterator[Metric]:
        live = GaugeMetricFamily("aomi_sessions_live", "Sessions live in memory.", labels=["app"])
        warm = GaugeMetricFamily(
            "aomi_session_places_free", "Places for live sessions free in running session actors.", labels=["app"]
        )
        actors = GaugeMetricFamily("aomi_session_actors", "Session actors (processes) running.", labels=["app"])
        draining = GaugeMetricFamily(
            "aomi_session_actors_draining", "Session actors of an older version, draining.", labels=["app"]
        )
        for app, s in self._stats.items():
            live.add_metric([app], s["live"])
            warm.add_metric([app], s["warm"])
            actors.add_metric([app], s["actors"])
            draining.add_metric([app], s["old_actors"])
        yield live
        yield warm
        yield actors
        yield draining
        for key, help_text in COUNTERS.items():
            family = CounterMetricFamily(f"aomi_sessions_{key}", help_text, labels=["app"])
            for app, s in self._stats.items():
                family.add_metric([app], s[key])
            yield family
        hits = CounterMetricFamily("aomi_cache_hits", "Lookups answered by a live session.", labels=["layer", "app"])
        misses = CounterMetricFamily(
            "aomi_cache_misses", "Lookups that had to load or create.", labels=["layer", "app"]
        )
        for app, s in self._stats.items():
            hits.add_metric(["directory", app], s["hits"])
            misses.add_metric(["directory", app], s["misses"])
        for layer, counts in self._caches.items():
            hits.add_metric([layer, ""], counts["hits"])
            misses.add_metric([layer, ""], counts["misses"])
        yield hits
        yield misses
        for key, (name, help_text) in HISTOGRAMS.items():
            histogram = HistogramMetricFamily(name, help_text, labels=["app"])
            for app, s in self._stats.items():
                h = s[key]
                buckets = [(_le(b), c) for b, c in zip(h["bounds"], h["counts"], strict=True)] + [("+Inf", h["count"])]
                histogram.add_metric([app], buckets, h["sum"])
            yield histogram


def _le(bound: float) -> str:
    return str(float(bound))


class RequestTimer:
    """ASGI middleware: each request's latency to its response's start, by route template (not by path, so a
    session id never becomes a label)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                self.metrics.request_seconds.labels(scope["method"], template, str(message["status"])).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, timed_send)
