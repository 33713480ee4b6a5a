"""Load benchmark: many sessions, many turns, many clients at once, some sessions streamed; then checked.

    .venv/bin/python bench/load.py [--sessions 200] [--turns 10] [--clients 64] [--streamed 0.25]
                                   [--sessions-per-actor 1]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Starts its own local Ray (temp dir /tmp/aomi-ray-*), Serve (port 8766) and a SQLite database in that
directory, and stops them; `--sessions-per-actor N` packs up to N live sessions in each session actor. With
`--database-url` naming a PostgreSQL server, it makes a fresh database there and drops it afterwards. Each
client takes a session and sends its turns one after another, alternating `count to 3` and a `time_now` tool
call; a share of the sessions has an SSE subscriber from before its first message to the end. Afterwards it
reads the database directly and checks every message and event, what each subscriber received, and that no
request failed; then it evicts every session and compares the memory of the runtime's processes with their
peak. Prints one table of figures and one of checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

PORT = 8766
APP = "default"
TURN_TIMEOUT = 120.0  # a turn (or stream) whose end is never seen is a failure, named, not a hang


def turn_message(turn: int) -> str:
    return "count to 3" if turn % 2 == 0 else '/tool time_now {"topic": "clock"}'


@dataclass
class Subscriber:
    """One SSE stream on a session, kept open from before its first message until told to stop."""

    session_id: str
    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    done_seen: dict[str, asyncio.Event] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None

    def waiter(self, request_id: str) -> asyncio.Event:
        return self.done_seen.setdefault(request_id, asyncio.Event())


@dataclass
class Results:
    """Everything measured and counted by one run."""

    chat_ack: list[float] = field(default_factory=list)
    turn: list[float] = field(default_factory=list)
    state_read: list[float] = field(default_factory=list)
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    turns: int = 0
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)


class Load:
    """Drives `sessions` sessions of `turns` turns each through `clients` concurrent clients over HTTP."""

    def __init__(
        self,
        url: str,
        sessions: int,
        turns: int,
        clients: int,
        streamed: float,
        poll_interval: float = 0.05,
        timeout: float = TURN_TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout  # a request's, a turn's, a stream's: past it, a failure named, not a hang
        self.session_ids = [str(uuid.uuid4()) for _ in range(sessions)]
        self.turns = turns
        self.clients = clients
        self.streamed = set(self.session_ids[: round(sessions * streamed)])
        self.poll_interval = poll_interval
        self.results = Results()

    async def run(self) -> Results:
        limits = httpx.Limits(max_connections=self.clients + len(self.streamed) + 8, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout, limits=limits) as client:
            subscribers = {s: Subscriber(s) for s in self.streamed}
            self.results.subscribers = subscribers
            readers = [asyncio.create_task(self._subscribe(client, sub)) for sub in subscribers.values()]
            for sub in subscribers.values():
                try:
                    await asyncio.wait_for(sub.opened.wait(), self.timeout)
                except TimeoutError:
                    self.results.failures.append(f"{sub.session_id}: its stream did not open in {self.timeout:g} s")
            queue: asyncio.Queue[str] = asyncio.Queue()
            for s in self.session_ids:
                queue.put_nowait(s)
            started = time.perf_counter()
            await asyncio.gather(*(self._client(client, queue) for _ in range(self.clients)))
            self.results.seconds = time.perf_counter() - started
            for sub in subscribers.values():
                sub.stop.set()
            _, stuck = await asyncio.wait(readers, timeout=self.timeout) if readers else (set(), set())
            for reader in stuck:  # a stream that neither ends nor sees its stop: said, not waited for
                reader.cancel()
                self.results.failures.append(f"a stream did not stop within {self.timeout:g} s of being told")
        return self.results

    async def _request(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        self.results.requests += 1
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.results.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        if not response.is_success:
            self.results.failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            return None
        return response

    async def _client(self, client: httpx.AsyncClient, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            session_id = queue.get_nowait()
            for turn in range(self.turns):
                await self._turn(client, session_id, turn)

    async def _turn(self, client: httpx.AsyncClient, session_id: str, turn: int) -> None:
        headers = {"X-Session-Id": session_id}
        request_id = f"turn-{turn}"
        sub = self.results.subscribers.get(session_id)
        done = sub.waiter(request_id) if sub is not None else None
        started = time.perf_counter()
        params = {"message": turn_message(turn), "request_id": request_id}
        if await self._request(client, "POST", "/api/chat", params=params, headers=headers) is None:
            return
        self.results.chat_ack.append(time.perf_counter() - started)
        if done is not None:
            try:
                await asyncio.wait_for(done.wait(), self.timeout)
            except TimeoutError:
                self.results.failures.append(f"{session_id} turn {turn}: no processing_done on its stream")
                return
            self.results.turn.append(time.perf_counter() - started)
            await self._state(client, headers)  # one read a turn on streamed sessions too
        else:
            while True:
                state = await self._state(client, headers)
                if state is None:
                    return
                if not state["is_processing"]:
                    break
                if time.perf_counter() - started > self.timeout:
                    last = state["messages"][-1] if state["messages"] else None
                    self.results.failures.append(f"{session_id} turn {turn}: still processing; last message {last}")
                    return
                await asyncio.sleep(self.poll_interval)
            self.results.turn.append(time.perf_counter() - started)
        self.results.turns += 1

    async def _state(self, client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any] | None:
        started = time.perf_counter()
        response = await self._request(client, "GET", "/api/state", headers=headers)
        if response is None:
            return None
        self.results.state_read.append(time.perf_counter() - started)
        state: dict[str, Any] = response.json()
        return state

    async def _subscribe(self, client: httpx.AsyncClient, sub: Subscriber) -> None:
        # Reads until told to stop, then closes; resumes with Last-Event-ID if the runtime ends the stream.
        headers = {"X-Session-Id": sub.session_id, "Accept": "text/event-stream"}
        while not sub.stop.is_set():
            if sub.frames:
                headers["Last-Event-ID"] = str(sub.frames[-1][0])
            self.results.requests += 1
            try:
                async with client.stream("GET", "/api/updates", headers=headers) as response:
                    if response.status_code != 200:
                        self.results.failures.append(f"GET /api/updates: {response.status_code}")
                        sub.opened.set()
                        return
                    sub.opened.set()
                    await self._read(response, sub)
            except httpx.HTTPError as exc:
                self.results.failures.append(f"GET /api/updates: {type(exc).__name__}: {exc}")
                sub.opened.set()
                return

    async def _read(self, response: httpx.Response, sub: Subscriber) -> None:
        lines = response.aiter_lines()
        seq: int | None = None
        while True:
            next_line = asyncio.ensure_future(anext(lines, None))
            stop = asyncio.ensure_future(sub.stop.wait())
            await asyncio.wait([next_line, stop], return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                await asyncio.gather(next_line, return_exceptions=True)
                return
            stop.cancel()
            line = next_line.result()
            if line is None:
                return  # the runtime ended the stream: resume
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("data: "):
                assert seq is not None, "a data line without an id line"
                data = json.loads(line[6:])
                sub.frames.append((seq, data))
                if data["type"] == "processing_done" and "request_id" in data:
                    sub.waiter(data["request_id"]).set()


async def verify(database_url: str, load: Load, results: Results) -> dict[str, tuple[bool, str]]:
    """The invariants, read from the database: name -> (held, detail)."""
    from aomi_runtime.backends.history import open_history

    history = open_history(database_url)
    await history.setup()
    bad_messages: list[str] = []
    bad_events: list[str] = []
    bad_streams: list[str] = []
    events_total = messages_total = 0
    try:
        for s in load.session_ids:
            stored = await history.load(APP, s)
            if stored is None:
                bad_messages.append(f"{s}: not stored")
                continue
            messages = stored.messages
            messages_total += len(messages)
            users = [(m.content, m.request_id) for m in messages if m.sender == "user"]
            expected = [(turn_message(t), f"turn-{t}") for t in range(load.turns)]
            problem = _check_messages(messages, users, expected)
            if problem:
                bad_messages.append(f"{s}: {problem}")
            events = await history.events(APP, s, 0, 100_000)
            events_total += len(events)
            seqs = [e.seq for e in events]
            dones = [e.data.get("request_id") for e in events if e.data["type"] == "processing_done"]
            if seqs != list(range(1, len(seqs) + 1)) or stored.record.last_seq != len(seqs):
                bad_events.append(f"{s}: seqs {seqs[:5]}... last_seq {stored.record.last_seq}")
            elif dones != [f"turn-{t}" for t in range(load.turns)]:
                bad_events.append(f"{s}: processing_done for {dones}")
            sub = results.subscribers.get(s)
            if sub is not None:
                got = [(seq, data) for seq, data in sub.frames]
                if sub.error or got != [(e.seq, e.data) for e in events]:
                    bad_streams.append(f"{s}: received {[q for q, _ in got][:8]}... of {len(events)} stored")
    finally:
        await history.close()
    n, streams = len(load.session_ids), len(results.subscribers)
    received = sum(len(sub.frames) for sub in results.subscribers.values())
    return {
        "no request failed (non-2xx or transport error)": (
            not results.failures,
            f"{len(results.failures)} of {results.requests}" + _first(results.failures),
        ),
        "every message stored, in order": (
            not bad_messages,
            f"{n - len(bad_messages)}/{n} sessions, {messages_total} messages" + _first(bad_messages),
        ),
        "every event stored, seq 1..N with no gap": (
            not bad_events,
            f"{n - len(bad_events)}/{n} sessions, {events_total} events" + _first(bad_events),
        ),
        "subscribers got every event once, in order": (
            not bad_streams,
            f"{streams - len(bad_streams)}/{streams} streams, {received} events" + _first(bad_streams),
        ),
    }


def _first(problems: list[str]) -> str:
    return f"; first: {problems[0]}" if problems else ""


def _check_messages(messages: list[Any], users: list[tuple[str, str | None]], expected: list[Any]) -> str | None:
    if [m.id for m in messages] != list(range(len(messages))):
        return "message ids not 0..n-1"
    if users != expected:
        return f"user messages {users} != {expected}"
    if any(m.is_streaming for m in messages):
        return "a message left streaming"
    counts = [m.content for m in messages if m.sender == "agent" and m.content == "1 2 3"]
    tools = [m for m in messages if m.tool_result is not None]
    if len(counts) != (len(expected) + 1) // 2 or len(tools) != len(expected) // 2:
        return f"{len(counts)} counted replies and {len(tools)} tool results"
    return None


# --- memory of the runtime's processes ---------------------------------------------------------------


def runtime_processes() -> list[psutil.Process]:
    """Every process this driver started for Ray: GCS, raylet, and the raylet's workers (actors, Serve)."""
    return psutil.Process().children(recursive=True)


def pss_bytes(processes: list[psutil.Process]) -> tuple[int, int]:
    """Total PSS (shared pages split among the processes sharing them, so the sum counts each page once) and
    how many processes were measured."""
    total = counted = 0
    for p in processes:
        try:
            total += p.memory_full_info().pss
            counted += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, counted


@contextmanager
def peak_memory(every: float = 2.0) -> Iterator[dict[str, int]]:
    """Sample the runtime's total PSS in a thread while the block runs; yields {"peak": bytes, "processes": n}."""
    found = {"peak": 0, "processes": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            total, counted = pss_bytes(runtime_processes())
            if total > found["peak"]:
                found["peak"], found["processes"] = total, counted

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


# --- the report --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def report(args: argparse.Namespace, database: str, results: Results, checks: dict[str, tuple[bool, str]]) -> str:
    load = os.getloadavg()
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average before the run {args.load_before:.1f}, after {load[0]:.1f}",
        f"run: {args.sessions} sessions x {args.turns} turns, {args.clients} clients, "
        f"{len(results.subscribers)} sessions streamed, {args.sessions_per_actor} sessions per actor, {database}",
        "",
        "| figure | n | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for name, values in (
        ("chat acknowledged: POST /api/chat", results.chat_ack),
        ("full turn: chat sent -> processing_done seen", results.turn),
        ("state read: GET /api/state", results.state_read),
    ):
        p50, p90, p99 = (percentile(values, q) * 1000 for q in (0.5, 0.9, 0.99))
        lines.append(f"| {name} | {len(values)} | {p50:.1f} | {p90:.1f} | {p99:.1f} |")
    m = results.memory
    requests = len(results.chat_ack) + len(results.state_read)
    lines += [
        "",
        "| throughput | value |",
        "|---|---|",
        f"| wall time | {results.seconds:.1f} s |",
        f"| turns/s | {results.turns / results.seconds:.1f} |",
        f"| requests/s (chat and state; streams not counted) | {requests / results.seconds:.1f} |",
        f"| runtime memory (PSS of its processes): before load | {m['before'] >> 20} MiB ({m['before_n']} processes) |",
        f"| at peak | {m['peak'] >> 20} MiB ({m['peak_n']} processes) |",
        f"| after every session was evicted | {m['after'] >> 20} MiB ({m['after_n']} processes) |",
        "",
        "| check | held | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {detail} |" for name, (ok, detail) in checks.items()]
    return "\n".join(lines)


def memory_came_down(memory: dict[str, int]) -> tuple[bool, str]:
    """Fair: what stays above the pre-load baseline, against what the load added at its peak. Live session actors
    are processes, so evicting them must give back most of it; a quarter may stay (the warm pool, Python heaps)."""
    added = memory["peak"] - memory["before"]
    kept = memory["after"] - memory["before"]
    share = kept / added if added > 0 else 0.0
    return share <= 0.25, f"{kept >> 20} MiB of the {added >> 20} MiB added at peak stayed ({share:.0%})"


async def warm_pool(runtime: Any, timeout: float = 60.0) -> None:
    """Start the App's directory and wait for its warm capacity: the runtime at rest, before any session, which
    eviction returns to (packed, one warm actor is a large share of what a small load adds)."""
    await runtime.sweep()  # the directory starts, and starts its warm actors
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await runtime.stats())[APP]["warm"] >= 2:
            return
        await asyncio.sleep(0.2)


async def drive(args: argparse.Namespace, settings: Any) -> tuple[Results, dict[str, tuple[bool, str]]]:
    load = Load(f"http://127.0.0.1:{PORT}", args.sessions, args.turns, args.clients, args.streamed)
    await warm_pool(settings.runtime())
    before, before_n = pss_bytes(runtime_processes())
    with peak_memory() as peak:
        results = await load.run()
    checks = await verify(settings.database_url, load, results)
    await settings.runtime().close_sessions()
    await asyncio.sleep(5.0)  # the directory refills its warm pool and the evicted actors exit
    after, after_n = pss_bytes(runtime_processes())
    results.memory = {"before": before, "before_n": before_n, "after": after, "after_n": after_n,
                      "peak": max(peak["peak"], before), "peak_n": peak["processes"]}  # fmt: skip
    checks["memory came back down after eviction"] = memory_came_down(results.memory)
    return results, checks


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    import asyncpg

    name = f"aomi_load_{uuid.uuid4().hex[:10]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(server_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def local_runtime(
    port: int, namespace: str, database_url: str | None = None, *, proxy_port: int | None = None, **options: Any
) -> Iterator[Any]:
    """A local Ray (temp dir /tmp/aomi-ray-*, which the CI leak check looks for), Serve's proxy on `port` (or
    `proxy_port`, where direct ingress puts the runtime's replica on `port`) and the runtime on SQLite in that
    directory (or `database_url`), with any other `Settings` in `options`; yields its settings, and stops all of it."""
    import ray
    from ray import serve

    from aomi_runtime.actors.node import lean_ray_env
    from aomi_runtime.serve_app.launch import deploy
    from aomi_runtime.serve_app.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="aomi-ray-", dir="/tmp"))
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    settings = Settings(database_url=url, port=port, namespace=namespace, **options)
    lean_ray_env(os.environ)  # the Ray settings `launch` starts the runtime with
    ray.init(address="local", include_dashboard=False, log_to_driver=False, _temp_dir=str(workdir / "ray"))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": proxy_port or port})
        deploy(settings)
        yield settings
    finally:
        asyncio.run(settings.runtime().stop())
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--streamed", type=float, default=0.25, help="share of sessions with an SSE subscriber")
    parser.add_argument("--database-url", help="a PostgreSQL server URL: a fresh database is made on it")
    parser.add_argument("--sessions-per-actor", type=int, default=1, help="live sessions a session actor hosts")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    database = fresh_postgres(args.database_url) if args.database_url else _given(None)
    with database as url, local_runtime(PORT, "aomi-load", url, sessions_per_actor=args.sessions_per_actor) as settings:
        results, checks = asyncio.run(drive(args, settings))
        print(report(args, "PostgreSQL" if args.database_url else "SQLite", results, checks))
    if not all(ok for ok, _ in checks.values()):
        raise SystemExit(1)


@contextmanager
def _given(value: None) -> Iterator[None]:
    yield value


if __name__ == "__main__":
    main()
