"""Performance benchmark (issue 7): every figure beside a bare Serve endpoint on the same stack, in one run.

    .venv/bin/python -m bench.perf [--quick] [--requests 300] [--sessions 30] [--seconds 5] [--repeats 15]
                                   [--density 25,50,100,150] [--ingress direct|proxy]

Run from the repository's root. Starts its own local Ray (temp dir /tmp/aomi-ray-*), Serve (port 8767) with
the runtime and a bare endpoint (the floor) on SQLite in that directory, and stops all of it, also on Ctrl-C
or an error. Measures, one after another so that no figure loads another: cache-hit state reads, a new
session's first chat, cold loads of evicted sessions, full turns with the scripted model (chat sent ->
processing_done seen on a stream opened before), SSE delivery (POST /api/system sent -> its frame received),
reads/s with 1, 8 and 32 concurrent clients (runtime and floor, same client code) and cold loads against
history length (10, 1,000, 10,000 stored messages); with `--density`, last, the floor and a cache hit again
with that many live (idle) session actors. Also the CPU time a floor request, a `/health` and a cache hit cost,
by process. By default both the runtime and the floor are reached on their replicas' own ports (Serve's direct
ingress, the runtime's default: the runtime's on `--port`, the floor's on the next); with `--ingress proxy`,
through Serve's proxy on `--port`. Prints markdown tables headed by the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import httpx

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.records import Commit, Message, SessionRecord
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.client import AsyncClient, AsyncSession
from aomi_runtime.serve_app.app import MAX_ONGOING_REQUESTS
from aomi_runtime.serve_app.ingress import DEFAULT_INGRESS, Ingress, direct_urls, free_port, ray_env
from aomi_runtime.serve_app.launch import APP_NAME
from aomi_runtime.serve_app.settings import Settings
from bench.cpu import cpu_spent, per
from bench.load import local_runtime, percentile

PORT = 8767
CONCURRENCY = (1, 8, 32)
HISTORY_SIZES = (10, 1_000, 10_000)
FLOOR = "floor: bare Serve endpoint, GET /bare"
IDLE_SECONDS = 3.0  # no request: what each process spends on its own


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Bare:
    """The floor: a Serve endpoint that does nothing."""

    async def __call__(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK")


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


@dataclass
class Rate:
    """Reads per second with `clients` concurrent clients, and the latency of each read."""

    clients: int
    per_second: float
    latencies: list[float]


@dataclass
class Measured:
    latency: list[tuple[str, list[float]]] = field(default_factory=list)
    rates: list[tuple[Rate, Rate]] = field(default_factory=list)  # (floor, runtime) per concurrency
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # request -> process -> CPU ms per request
    idle: dict[str, float] = field(default_factory=dict)  # process -> CPU ms per second, no request coming


class Watcher:
    """One SSE stream of a session, read with the Python client, open for the whole measurement; each waiter
    learns when the first event it matches arrived (`time.perf_counter()`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[float]]] = []
        self.task: asyncio.Task[None] | None = None

    def expect(self, match: Callable[[dict[str, Any]], bool]) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((match, future))
        return future

    async def _read(self) -> None:
        async for event in self.session.events():
            arrived = time.perf_counter()
            for waiter in [w for w in self.waiters if w[0](event.data)]:
                self.waiters.remove(waiter)
                waiter[1].set_result(arrived)

    async def open(self) -> None:
        self.task = asyncio.create_task(self._read())
        # The stream is open once a notice posted now has come through it.
        await asyncio.wait_for(self.system_delivery(self.session.client._http), timeout=30)

    async def system_delivery(self, http: httpx.AsyncClient) -> tuple[float, float]:
        """POST /api/system sent -> its frame received, and its answer received -> its frame received, in seconds.

        The event is published inside the POST (once stored), so the first includes the request's way in and the
        second leaves out the answer's way back: the stream's own delivery lies between them."""
        token = f"perf-{uuid.uuid4().hex}"
        arrived = self.expect(lambda data: token in json.dumps(data))
        started = time.perf_counter()
        response = await http.post("/api/system", params={"message": token}, headers={"X-Session-Id": self.session.id})
        answered = time.perf_counter()
        assert response.status_code == 200, response.text
        frame = await asyncio.wait_for(arrived, timeout=30)
        return frame - started, frame - answered

    async def full_turn(self, http: httpx.AsyncClient, message: str) -> float:
        """POST /api/chat sent -> its processing_done received, in seconds."""
        request_id = uuid.uuid4().hex
        done = self.expect(lambda data: data.get("type") == "processing_done" and data.get("request_id") == request_id)
        started = time.perf_counter()
        params = {"message": message, "request_id": request_id}
        response = await http.post("/api/chat", params=params, headers={"X-Session-Id": self.session.id})
        assert response.status_code == 200, response.text
        return await asyncio.wait_for(done, timeout=60) - started

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def sequential(http: httpx.AsyncClient, path: str, headers: dict[str, str], n: int) -> list[float]:
    """`n` GETs of `path`, one after another: the latency of each."""
    return [await timed(lambda: http.get(path, headers=headers)) for _ in range(n)]


async def reads_per_second(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], clients: int, seconds: float
) -> Rate:
    """`clients` concurrent loops of GET `path` for `seconds`: completed reads per second, and their latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            latencies.append(await timed(lambda: http.get(path, headers=headers)))

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return Rate(clients, len(latencies) / (time.perf_counter() - started), latencies)


async def measure(args: argparse.Namespace, settings: Settings, url: str, floor: str) -> Measured:
    """Every figure, the runtime at `url` and the bare endpoint at `floor` (a whole URL)."""
    runtime = settings.runtime()
    out = Measured()
    n = args.requests
    limits = httpx.Limits(max_connections=2 * max(CONCURRENCY), max_keepalive_connections=2 * max(CONCURRENCY))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http, AsyncClient(url) as client:
        live = str(uuid.uuid4())
        await http.post("/api/chat", params={"message": "hello"}, headers={"X-Session-Id": live})
        await asyncio.sleep(0.5)
        state = {"X-Session-Id": live}
        for _ in range(20):  # warm both paths
            await http.get(floor)
            await http.get("/api/state", headers=state)
        # Each run's CPU is read with its latencies: /health's run is there for its CPU only.
        with cpu_spent() as on_floor:
            out.latency.append((FLOOR, await sequential(http, floor, {}, n)))
        with cpu_spent() as on_hit:
            out.latency.append(
                ("cache hit: GET /api/state, live session", await sequential(http, "/api/state", state, n))
            )
        with cpu_spent() as on_health:
            await sequential(http, "/health", {}, n)
        out.cpu = {
            "GET /bare (the floor)": per(on_floor, n),
            "GET /health (the ingress, no session)": per(on_health, n),
            "GET /api/state (cache hit)": per(on_hit, n),
        }
        with cpu_spent() as idle:
            await asyncio.sleep(IDLE_SECONDS)
        out.idle = per(idle, IDLE_SECONDS)

        watcher = Watcher(await client.session(live))
        await watcher.open()
        try:
            await watcher.full_turn(http, "hi")  # warm
            turns = [await watcher.full_turn(http, "hi") for _ in range(args.turns)]
            out.latency.append(('full turn, scripted model ("hi"): chat sent -> processing_done seen', turns))
            sent, answered = zip(*[await watcher.system_delivery(http) for _ in range(args.turns)], strict=True)
            out.latency.append(("SSE delivery: POST /api/system sent -> frame received", list(sent)))
            out.latency.append(("SSE delivery: POST /api/system answered -> frame received", list(answered)))
        finally:
            await watcher.close()

        for clients in CONCURRENCY:
            bare = await reads_per_second(http, floor, {}, clients, args.seconds)
            hit = await reads_per_second(http, "/api/state", state, clients, args.seconds)
            out.rates.append((bare, hit))

        out.latency += await first_chats_then_cold_loads(
            http, runtime, [str(uuid.uuid4()) for _ in range(args.sessions)]
        )
        history = SqlHistory.from_url(settings.database_url)
        try:
            await history.setup()
            for size in HISTORY_SIZES:
                stored = await store_session(history, size)
                loads = await cold_loads(http, runtime, stored, args.repeats)
                out.latency.append((f"cold load, {size:,} stored messages", loads))
        finally:
            await history.close()
        if args.density:
            out.latency += await density(http, floor, args.density, args.requests)
    return out


async def density(
    http: httpx.AsyncClient, floor: str, levels: list[int], requests: int
) -> list[tuple[str, list[float]]]:
    """At each level of live session actors (started by first chats, idle since): floor and cache-hit reads."""
    results: list[tuple[str, list[float]]] = []
    live: list[str] = []
    for level in levels:
        while len(live) < level:
            live.append(str(uuid.uuid4()))
            response = await http.post("/api/chat", params={"message": "hi"}, headers={"X-Session-Id": live[-1]})
            assert response.status_code == 200, response.text
        await asyncio.sleep(2.0)  # their turns over: idle actors, as live sessions mostly are
        state = {"X-Session-Id": live[-1]}
        await http.get("/api/state", headers=state)
        results.append((f"{level} live sessions: {FLOOR}", await sequential(http, floor, {}, requests)))
        hits = await sequential(http, "/api/state", state, requests)
        results.append((f"{level} live sessions: cache hit: GET /api/state", hits))
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(measured: Measured, load_before: tuple[float, float, float], args: argparse.Namespace) -> str:
    load_after = os.getloadavg()
    floor = measured.latency[0][1]
    floor_p50, floor_p99 = statistics.median(floor), percentile(floor, 0.99)
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Ray {ray.__version__}",
        "load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        ),
        f"run: {'--quick' if args.quick else 'full'}, SQLite, one driver process as every client, "
        f"{'direct ingress (no proxy)' if args.ingress == 'direct' else 'through Serve proxy'}",
        "",
        "| figure | n | p50 ms | p99 ms | p99 / p50 | p50 / floor p50 | p99 / floor p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in measured.latency:
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        lines.append(
            f"| {name} | {len(values)} | {ms(p50)} | {ms(p99)} | {p99 / p50:.1f}x | {p50 / floor_p50:.2f}x "
            f"| {p99 / floor_p99:.2f}x |"
        )
    lines += [
        "",
        f"reads/s: cache-hit GET /api/state against GET /bare, {args.seconds:g} s each, same client code",
        "",
        "| clients | floor reads/s | runtime reads/s | runtime / floor | floor p50 / p99 ms | runtime p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for bare, hit in measured.rates:
        lines.append(
            f"| {hit.clients} | {bare.per_second:.0f} | {hit.per_second:.0f} | {hit.per_second / bare.per_second:.2f}x "
            f"| {ms(statistics.median(bare.latencies))} / {ms(percentile(bare.latencies, 0.99))} "
            f"| {ms(statistics.median(hit.latencies))} / {ms(percentile(hit.latencies, 0.99))} |"
        )
    return "\n".join(lines + cpu_report(measured))


CPU_COLUMNS = {
    "proxy": lambda name: name == "ray::ProxyActor",
    "replica": lambda name: name.startswith("ray::ServeReplica"),
    "session actor": lambda name: name == "ray::SessionActor",
    "client": lambda name: name.startswith("client"),
}


def cpu_report(measured: Measured) -> list[str]:
    """CPU per request by process, sequential requests; the rest is Ray's own (GCS, raylet, controller, ...)."""
    lines = [
        "",
        "CPU per request, by process (user + system time over the sequential reads; idle work included)",
        "",
        f"| request | CPU ms | {' | '.join(CPU_COLUMNS)} | rest |",
        "|---|---|" + "---|" * (len(CPU_COLUMNS) + 1),
    ]
    for request, spent in measured.cpu.items():
        columns = [sum(v for k, v in spent.items() if belongs(k)) for belongs in CPU_COLUMNS.values()]
        total = sum(spent.values())
        lines.append(
            f"| {request} | {total:.2f} | {' | '.join(f'{c:.2f}' for c in columns)} | {total - sum(columns):.2f} |"
        )
    idle = ", ".join(f"{name} {value:.0f}" for name, value in sorted(measured.idle.items(), key=lambda x: -x[1])[:6])
    return [*lines, "", f"idle, CPU ms per second: {idle}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples: about a minute")
    parser.add_argument("--requests", type=int, default=300, help="sequential reads per latency figure")
    parser.add_argument("--turns", type=int, default=100, help="full turns, and SSE deliveries")
    parser.add_argument("--sessions", type=int, default=30, help="new sessions (first chat, then cold load)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per reads/s measurement")
    parser.add_argument("--repeats", type=int, default=15, help="cold loads per history length")
    parser.add_argument(
        "--density",
        type=lambda text: [int(n) for n in text.split(",")],
        help="also floor and cache hit with this many live sessions, e.g. 25,50,100,150 (slow: actor starts; the "
        "runtime keeps at most 50 live sessions per core and evicts beyond that)",
    )
    parser.add_argument("--port", type=int, default=PORT, help="the runtime's HTTP port")
    parser.add_argument(
        "--ingress",
        choices=get_args(Ingress),
        default=DEFAULT_INGRESS,
        help="direct (the runtime's default): each ingress replica answers on a port of its own, no proxy; proxy: "
        "both through Serve's proxy",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.turns, args.sessions, args.seconds, args.repeats = 100, 30, 10, 2.0, 5
    load_before = os.getloadavg()
    # Before Ray starts: its Serve processes inherit it. Direct: the runtime's replica on --port, the floor's next.
    os.environ.update(ray_env(args.ingress, args.port, replicas=2))
    proxy_port = free_port("127.0.0.1") if args.ingress == "direct" else None
    with local_runtime(args.port, "aomi-perf", proxy_port=proxy_port) as settings:
        # The floor takes as many requests at once as the runtime's ingress (Serve's default, 5, queues the rest).
        floor = Bare.options(max_ongoing_requests=MAX_ONGOING_REQUESTS)
        serve.run(floor.bind(), name="bare", route_prefix="/bare")
        url = floor_url = f"http://127.0.0.1:{args.port}"
        if args.ingress == "direct":
            (url,), (floor_url,) = direct_urls(APP_NAME, "127.0.0.1"), direct_urls("bare", "127.0.0.1")
        measured = asyncio.run(measure(args, settings, url, f"{floor_url}/bare"))
        print(report(measured, load_before, args))


if __name__ == "__main__":
    main()
