"""Lifecycle benchmark: cache hits, cold loads and first chats against a bare Serve endpoint, in one run.

    .venv/bin/python bench/lifecycle.py [--requests 300] [--sessions 40]

Starts its own local Ray, Serve (port 8765) and a SQLite database in a temporary directory, and stops them.
Prints one table: median and p99 of each figure, and each median as a ratio to the bare endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from aomi_runtime.actors.node import lean_ray_env
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.models import Commit, Message, SessionRecord
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.serve_app.launch import deploy
from aomi_runtime.serve_app.settings import Settings

PORT = 8765


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Bare:
    """The floor: a Serve endpoint that does nothing."""

    async def __call__(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    started = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed


async def first_chats_then_cold_loads(
    client: httpx.AsyncClient, runtime: Runtime, ids: list[str]
) -> list[tuple[str, list[float]]]:
    """A first chat for each new session in `ids`, then (all of them evicted) a cold load of each."""
    first_chats = []
    for s in ids:
        first_chats.append(
            await timed(lambda s=s: client.post("/api/chat", params={"message": "hi"}, headers={"X-Session-Id": s}))
        )
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    await runtime.close_sessions()  # every session evicted: the next read is a cold load
    await asyncio.sleep(2.0)  # let the warm pool refill
    colds = []
    for s in ids:
        colds.append(await timed(lambda s=s: client.get("/api/state", headers={"X-Session-Id": s})))
        await asyncio.sleep(0.05)
    return [
        ("new session, first chat: POST /api/chat", first_chats),
        ("cold load: GET /api/state, evicted session", colds),
    ]


async def store_session(history: SqlHistory, size: int) -> str:
    """A session of `size` messages written directly with the history backend (never live): its id."""
    session_id = str(uuid.uuid4())
    messages = [
        Message(id=i, sender="user" if i % 2 == 0 else "agent", content=f"message {i} " + "x" * 200)
        for i in range(size)
    ]
    await history.commit(
        "default", Commit(record=SessionRecord(session_id=session_id, app="default"), messages=messages)
    )
    return session_id


async def cold_loads(client: httpx.AsyncClient, runtime: Runtime, session_id: str, repeats: int) -> list[float]:
    """`repeats` reads of a stored session's state, each after every session was evicted."""
    loads = []
    for _ in range(repeats):
        await runtime.close_sessions()
        await asyncio.sleep(0.3)
        loads.append(await timed(lambda: client.get("/api/state", headers={"X-Session-Id": session_id})))
    return loads


async def run(requests: int, sessions: int, settings: Settings) -> list[tuple[str, list[float]]]:
    runtime = settings.runtime()
    results: list[tuple[str, list[float]]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
        for _ in range(20):  # warm both paths
            await client.get("/bare")
        results.append(("bare Serve endpoint", [await timed(lambda: client.get("/bare")) for _ in range(requests)]))

        live = str(uuid.uuid4())
        await client.post("/api/chat", params={"message": "hello"}, headers={"X-Session-Id": live})
        await asyncio.sleep(0.5)
        hits = [await timed(lambda: client.get("/api/state", headers={"X-Session-Id": live})) for _ in range(requests)]
        results.append(("cache hit: GET /api/state, live session", hits))

        results += await first_chats_then_cold_loads(client, runtime, [str(uuid.uuid4()) for _ in range(sessions)])

        history = SqlHistory.from_url(settings.database_url)
        await history.setup()
        for size in (10, 1000):
            stored = await store_session(history, size)
            results.append((f"cold load, {size:,} messages", await cold_loads(client, runtime, stored, 15)))
        await history.close()
    return results


def report(results: list[tuple[str, list[float]]]) -> str:
    floor = statistics.median(results[0][1])
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Ray {ray.__version__}",
        "",
        "| figure | n | p50 ms | p99 ms | p50 / bare |",
        "|---|---|---|---|---|",
    ]
    for name, values in results:
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        lines.append(f"| {name} | {len(values)} | {p50 * 1000:.1f} | {p99 * 1000:.1f} | {p50 / floor:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=40)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aomi-bench-", dir="/tmp"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'bench.db'}", port=PORT, namespace="aomi-bench")
    lean_ray_env(os.environ)  # the Ray settings `launch` starts the runtime with
    ray.init(address="local", include_dashboard=False, log_to_driver=False, _temp_dir=str(workdir / "ray"))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        serve.run(Bare.bind(), name="bare", route_prefix="/bare")
        deploy(settings)
        results = asyncio.run(run(args.requests, args.sessions, settings))
        print(report(results))
    finally:
        asyncio.run(settings.runtime().stop())
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
