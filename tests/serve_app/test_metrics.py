"""`serve_app/metrics.py`: what the actors report turned into Prometheus families (live and warm gauges, the
counters, cumulative histograms with +Inf), and each request timed by route template, never by path. Without Ray:
the scrape is given the shape the directory and store report (`agent/stats.py`'s snapshots)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aomi_runtime.agent.stats import SIZE_BUCKETS, Histogram
from aomi_runtime.serve_app.metrics import COUNTERS, HISTOGRAMS, Metrics, RequestTimer, _Snapshot

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: bytes) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def app_stats(seen: float) -> dict[str, Any]:
    histograms = {key: Histogram() for key in HISTOGRAMS}
    histograms["batch_sizes"] = Histogram(bounds=SIZE_BUCKETS)
    histograms["turn_seconds"].observe(seen)
    histograms["turn_seconds"].observe(100.0)  # past every bound: in +Inf only
    return {
        "live": 3,
        "warm": 2,
        "actors": 5,
        "old_actors": 1,
        **{key: i + 1 for i, key in enumerate(COUNTERS)},
        "hits": 7,
        "misses": 4,
        **{key: h.snapshot() for key, h in histograms.items()},
    }


def test_the_scrape_reports_each_apps_counts_and_histograms() -> None:
    registry = CollectorRegistry()
    caches = {"replica": {"hits": 5, "misses": 1}, "snapshot": {"hits": 9, "misses": 2}}
    registry.register(_Snapshot({"default": app_stats(0.2), "research": app_stats(0.02)}, caches))
    got = samples(generate_latest(registry))
    default = (("app", "default"),)
    assert got[("aomi_sessions_live", default)] == 3 and got[("aomi_session_places_free", default)] == 2
    assert got[("aomi_session_actors", default)] == 5 and got[("aomi_session_actors_draining", default)] == 1
    assert [got[(f"aomi_sessions_{key}_total", default)] for key in COUNTERS] == [1, 2, 3, 4]
    assert got[("aomi_cache_hits_total", (("app", "default"), ("layer", "directory")))] == 7
    assert got[("aomi_cache_misses_total", (("app", "default"), ("layer", "directory")))] == 4
    assert got[("aomi_cache_hits_total", (("app", ""), ("layer", "replica")))] == 5
    assert got[("aomi_cache_misses_total", (("app", ""), ("layer", "replica")))] == 1
    assert got[("aomi_cache_hits_total", (("app", ""), ("layer", "snapshot")))] == 9
    assert got[("aomi_cache_misses_total", (("app", ""), ("layer", "snapshot")))] == 2

    def bucket(app: str, le: str) -> float:
        return got[("aomi_turn_seconds_bucket", (("app", app), ("le", le)))]

    assert (bucket("default", "0.1"), bucket("default", "0.25"), bucket("default", "60.0")) == (0, 1, 1)
    assert (bucket("research", "0.025"), bucket("default", "+Inf")) == (1, 2)
    assert got[("aomi_turn_seconds_count", default)] == 2 and got[("aomi_turn_seconds_sum", default)] == 100.2
    assert got[("aomi_store_batch_rows_bucket", (("app", "default"), ("le", "1024.0")))] == 0


async def test_requests_are_timed_by_route_template_and_status() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["session_id"], status_code=201)

    metrics = Metrics()
    app = RequestTimer(Starlette(routes=[Route("/api/sessions/{session_id}", echo)]), metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/api/sessions/secret-id-1")).status_code == 201
        await client.get("/api/sessions/secret-id-2")
        assert (await client.get("/nowhere")).status_code == 404
    text = generate_latest(metrics.registry)
    got = samples(text)
    route = (("method", "GET"), ("route", "/api/sessions/{session_id}"), ("status", "201"))
    assert got[("aomi_request_seconds_count", route)] == 2
    assert got[("aomi_request_seconds_count", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert b"secret-id" not in text  # a session id never becomes a label
