"""History in pages: what a page of a 10,000-message session costs against its whole snapshot, beside a bare Serve
endpoint (the floor), in one run.

    .venv/bin/python -m bench.pages [--quick] [--requests 300] [--size 10000] [--page 100]

Run from the repository's root. Starts its own local Ray (temp dir /tmp/aomi-ray-*), Serve with the runtime and
the floor under direct ingress (each on its replica's own port), SQLite in that directory, and stops all of it.
A session of `--size` messages (about 220 bytes each) and as many events is written directly with the history
backend; its pages and its snapshot are then read one after another, sequentially: live (a state read loaded it,
so the replica knows its actor) and evicted (read from the store). Prints a markdown table headed by the machine:
latency percentiles, each as a ratio to the floor's, and the bytes of each answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import serve

from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.serve_app.app import MAX_ONGOING_REQUESTS
from aomi_runtime.serve_app.ingress import direct_urls, free_port, ray_env
from aomi_runtime.serve_app.launch import APP_NAME
from aomi_runtime.serve_app.settings import Settings
from bench.load import local_runtime, percentile
from bench.perf import FLOOR, Bare, ms

PORT = 8768
Figure = tuple[str, list[float], int]  # name, latencies in seconds, bytes of the answer


async def store(settings: Settings, size: int) -> str:
    """A session of `size` messages and events, committed in batches with the history backend: its id."""
    session_id = str(uuid.uuid4())
    history = SqlHistory.from_url(settings.database_url)
    try:
        await history.setup()
        record = SessionRecord(session_id=session_id, app="default", last_seq=size)
        for start in range(0, size, 2_000):
            ids = range(start, min(size, start + 2_000))
            messages = [Message(id=i, sender="agent" if i % 2 else "user", content=f"m{i} " + "x" * 200) for i in ids]
            events = [Event(seq=i + 1, data={"type": "message", "session_id": session_id, "i": i}) for i in ids]
            await history.commit("default", Commit(record=record, messages=messages, events=events))
    finally:
        await history.close()
    return session_id


async def sequential(get: Callable[[], Awaitable[httpx.Response]], n: int) -> tuple[list[float], int]:
    """`n` requests one after another: each one's latency, and the bytes of the last answer."""
    latencies, size = [], 0
    for _ in range(n):
        started = time.perf_counter()
        response = await get()
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        size = len(response.content)
    return latencies, size


async def measure(args: argparse.Namespace, settings: Settings, url: str, floor: str) -> list[Figure]:
    s = await store(settings, args.size)
    session = {"X-Session-Id": s}
    middle = args.size // 2
    figures: list[Figure] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        reads: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = [
            (FLOOR, lambda: http.get(floor)),
            (f"page: GET /api/sessions/{{id}}/messages?limit={args.page}, newest", lambda: http.get(
                f"/api/sessions/{s}/messages", params={"limit": args.page})),
            (f"page: messages?before={middle}&limit={args.page}", lambda: http.get(
                f"/api/sessions/{s}/messages", params={"limit": args.page, "before": middle})),
            (f"page: GET /api/events?after={middle}&limit={args.page}", lambda: http.get(
                "/api/events", params={"after": middle, "limit": args.page}, headers=session)),
            (f"whole snapshot: GET /api/state, {args.size:,} messages", lambda: http.get(
                "/api/state", headers=session)),
        ]  # fmt: skip
        await http.get("/api/state", headers=session)  # loaded: live, and this replica knows its actor
        for _name, get in reads:  # warm each path
            await sequential(get, 10)
        for name, get in reads:
            latencies, size = await sequential(get, args.requests)
            figures.append((f"live: {name}" if name != FLOOR else name, latencies, size))
        await settings.runtime().close_sessions()  # evicted: the pages come from the store, nothing loads it
        await asyncio.sleep(1.0)
        for name, get in reads[1:4]:
            latencies, size = await sequential(get, args.requests)
            figures.append((f"evicted: {name}", latencies, size))
    return figures


def report(figures: list[Figure], args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    floor = figures[0][1]
    floor_p50, floor_p99 = statistics.median(floor), percentile(floor, 0.99)
    whole = next(size for name, _, size in figures if "whole snapshot" in name)
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Ray {ray.__version__}",
        "load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *os.getloadavg()
        ),
        f"run: {'--quick' if args.quick else 'full'}, SQLite, direct ingress, sequential requests, one client",
        "",
        "| figure | n | p50 ms | p90 ms | p99 ms | p50 / floor p50 | p99 / floor p99 | bytes | bytes / snapshot's |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, values, size in figures:
        p50, p90, p99 = (percentile(values, q) for q in (0.5, 0.9, 0.99))
        lines.append(
            f"| {name} | {len(values)} | {ms(p50)} | {ms(p90)} | {ms(p99)} | {p50 / floor_p50:.2f}x "
            f"| {p99 / floor_p99:.2f}x | {size:,} | {size / whole:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples: about half a minute")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per figure")
    parser.add_argument("--size", type=int, default=10_000, help="messages (and events) of the session")
    parser.add_argument("--page", type=int, default=100, help="items in a page")
    parser.add_argument("--port", type=int, default=PORT, help="the runtime's HTTP port")
    args = parser.parse_args()
    if args.quick:
        args.requests = 60
    load_before = os.getloadavg()
    os.environ.update(ray_env("direct", args.port, replicas=2))  # before Ray starts: Serve inherits it
    with local_runtime(args.port, "aomi-pages", proxy_port=free_port("127.0.0.1")) as settings:
        serve.run(Bare.options(max_ongoing_requests=MAX_ONGOING_REQUESTS).bind(), name="bare", route_prefix="/bare")
        (url,), (floor_url,) = direct_urls(APP_NAME, "127.0.0.1"), direct_urls("bare", "127.0.0.1")
        figures = asyncio.run(measure(args, settings, url, f"{floor_url}/bare"))
        print(report(figures, args, load_before))


if __name__ == "__main__":
    main()
