"""The peers' side-by-side table (issue 13): each server alone on one core, the same httpx client on the other.

    .venv/bin/python -m bench.peers [--quick] [--servers fastapi,serve,aomi,aomi-packed,langgraph,adk]
                                    [--packed 64] [--peers-venv bench/.peers-venv]

Run from the repository's root. Servers, one after another (never two at once), each started under
`taskset -c 0` (its children, Ray's daemons and workers among them, inherit the mask) with its own temporary
directory (`/tmp/aomi-ray-peers-*`, Ray's too, removed afterwards) and stopped before the next:

- bare FastAPI (floor a) and a bare Ray Serve deployment (floor b), both `bench/peers/floors.py`: sessions in a
  dict, the same routes;
- aomi-runtime as the README starts it (`aomi-runtime serve`, SQLite), at `--sessions-per-actor 1` and packed;
- LangGraph's `langgraph dev` serving `bench/peers/echo_graph.py` (a node that echoes);
- Google ADK's `adk api_server` serving `bench/peers/adk_agents/echo` (an LlmAgent whose model echoes), with
  the in-memory session service.

The peers run from their own venv (`--peers-venv`, made and filled from `bench/peers/requirements.txt` when
missing); a peer that cannot be installed or started is reported and skipped. This process is the client,
pinned to core 1. Phases per server: one session seeded (created, one turn), sequential state reads of it, new
sessions created one after another, turns one after another (sent -> reply done) in a session of their own, then
32 concurrent clients reading the seeded session's state for 10 s. Server CPU per read is the user + system time
all the server's processes spent over the sequential reads (`/proc/<pid>/stat`), idle work included; processes
and PSS (`/proc/<pid>/smaps_rollup`) are taken at the end. Prints a markdown table headed by the machine and
its load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / "peers"
SERVER_CORE, CLIENT_CORE = 0, 1
TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 20  # untimed reads before the timed ones


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


# --- the servers' processes, from /proc ---


def tree(root: int) -> list[int]:
    """`root` and every process below it (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User + system clock ticks each live process of `pids` has spent (all its threads)."""
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return ticks


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def off_core(pids: list[int]) -> list[int]:
    """The processes of `pids` allowed on any core but the server's."""
    wrong = []
    for pid in pids:
        try:
            if os.sched_getaffinity(pid) != {SERVER_CORE}:
                wrong.append(pid)
        except OSError:
            continue
    return wrong


# --- the servers' HTTP APIs ---


class Api:
    """How one server is asked for a session's state, a new session and a turn (`turn` returns once the reply
    is done)."""

    ready_path = "/health"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def read(self, session_id: str) -> httpx.Response:
        raise NotImplementedError

    async def create(self, session_id: str) -> httpx.Response:
        raise NotImplementedError

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class FloorApi(Api):
    async def read(self, session_id: str) -> httpx.Response:
        return await self.http.get(f"/state/{session_id}")

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post(f"/sessions/{session_id}")

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        return await self.http.post(f"/turn/{session_id}", params={"message": message})


class AomiApi(Api):
    """docs/api.md: a turn is POST /api/chat (answered at once) until its `processing_done` comes on the
    session's SSE stream, opened before the first turn and read by a task of its own."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__(http)
        self.streams: dict[str, asyncio.Task[None]] = {}
        self.waiting: dict[str, asyncio.Future[None]] = {}

    async def read(self, session_id: str) -> httpx.Response:
        return await self.http.get("/api/state", headers={"X-Session-Id": session_id})

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post("/api/sessions", headers={"X-Session-Id": session_id}, json={})

    async def _follow(self, session_id: str, opened: asyncio.Event) -> None:
        headers = {"X-Session-Id": session_id, "Accept": "text/event-stream"}
        async with self.http.stream("GET", "/api/updates", headers=headers, timeout=None) as response:
            async for line in response.aiter_lines():
                opened.set()  # the stream answers with a keep-alive comment at once
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    if data.get("type") == "processing_done":
                        waiter = self.waiting.pop(data.get("request_id") or "", None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        if session_id not in self.streams:
            opened = asyncio.Event()
            self.streams[session_id] = asyncio.create_task(self._follow(session_id, opened))
            await asyncio.wait_for(opened.wait(), timeout=60)
        request_id = uuid.uuid4().hex
        done = self.waiting[request_id] = asyncio.get_running_loop().create_future()
        params = {"message": message, "request_id": request_id}
        response = await self.http.post("/api/chat", params=params, headers={"X-Session-Id": session_id})
        if response.is_success:
            await asyncio.wait_for(done, timeout=60)
        return response

    async def close(self) -> None:
        for task in self.streams.values():
            task.cancel()
        await asyncio.gather(*self.streams.values(), return_exceptions=True)


class LangGraphApi(Api):
    ready_path = "/ok"

    async def read(self, session_id: str) -> httpx.Response:
        return await self.http.get(f"/threads/{session_id}/state")

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post("/threads", json={"thread_id": session_id})

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": message}]}}
        return await self.http.post(f"/threads/{session_id}/runs/wait", json=body)


class AdkApi(Api):
    ready_path = "/list-apps"
    APP, USER = "echo", "bench"

    async def read(self, session_id: str) -> httpx.Response:
        return await self.http.get(f"/apps/{self.APP}/users/{self.USER}/sessions/{session_id}")

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post(f"/apps/{self.APP}/users/{self.USER}/sessions", json={"session_id": session_id})

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        body = {
            "app_name": self.APP,
            "user_id": self.USER,
            "session_id": session_id,
            "new_message": {"role": "user", "parts": [{"text": message}]},
        }
        return await self.http.post("/run", json=body)


# --- the servers ---


Command = Callable[[int, Path], list[str]]  # (port, working directory) -> the server's command line


@dataclass
class Server:
    key: str  # for --servers
    label: str  # the table's first column
    api: type[Api]
    command: Command
    peer: bool = False  # runs from the peers' venv
    prepare: Callable[[Path], None] = lambda workdir: None


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def floor(kind: str) -> Command:
    return lambda port, workdir: [sys.executable, str(PEERS / "floors.py"), kind, "--port", str(port)]


def aomi(per_actor: int) -> Command:
    """The runtime as the README starts it, its SQLite file in the server's directory."""
    cli = str(Path(sys.executable).parent / "aomi-runtime")

    def command(port: int, workdir: Path) -> list[str]:
        database = f"sqlite:///{workdir / 'aomi.db'}"
        return [cli, "serve", "--port", str(port), "--sessions-per-actor", str(per_actor), "--database-url", database]

    return command


def langgraph(venv: Path) -> Command:
    def command(port: int, workdir: Path) -> list[str]:
        options = ["--config", "langgraph.json", "--port", str(port), "--no-browser", "--no-reload"]
        return [str(venv / "bin" / "langgraph"), "dev", *options]

    return command


def copy_graph(workdir: Path) -> None:
    # `langgraph dev` reads the graph's path relative to its working directory, where it also keeps its state.
    for name in ("langgraph.json", "echo_graph.py"):
        shutil.copy(PEERS / name, workdir / name)


def adk(venv: Path) -> Command:
    def command(port: int, workdir: Path) -> list[str]:
        services = ["--session_service_uri", "memory://", "--artifact_service_uri", "memory://"]
        services += ["--memory_service_uri", "memory://"]
        return [
            str(venv / "bin" / "adk"),
            "api_server",
            "--port",
            str(port),
            "--no-reload",
            *services,
            str(PEERS / "adk_agents"),
        ]

    return command


def servers(args: argparse.Namespace) -> list[Server]:
    venv = Path(args.peers_venv)
    return [
        Server("fastapi", "bare FastAPI (floor a)", FloorApi, floor("fastapi")),
        Server("serve", "bare Ray Serve endpoint (floor b)", FloorApi, floor("serve")),
        Server("aomi", "**aomi-runtime** (SQLite, as the README starts it), 1 session per actor", AomiApi, aomi(1)),
        Server(
            "aomi-packed", f"**aomi-runtime**, packed: {args.packed} sessions per actor", AomiApi, aomi(args.packed)
        ),
        Server("langgraph", "LangGraph `langgraph dev`", LangGraphApi, langgraph(venv), peer=True, prepare=copy_graph),
        Server("adk", "Google ADK `api_server` (memory)", AdkApi, adk(venv), peer=True),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RAY_TMPDIR=str(workdir),  # Ray's session files in the server's own directory, not /tmp/ray
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        PYTHONUNBUFFERED="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def started(server: Server, args: argparse.Namespace) -> Iterator[Running]:
    """`server` under `taskset -c 0` in a temporary directory of its own; stopped (SIGINT, then SIGKILL to each
    of its processes left after 60 s) and its directory removed on the way out."""
    workdir = Path(tempfile.mkdtemp(prefix="aomi-ray-peers-", dir="/tmp"))
    port = free_port()
    server.prepare(workdir)
    command = ["taskset", "-c", str(SERVER_CORE), *server.command(port, workdir)]
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=server_env(workdir), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Running(process, f"http://127.0.0.1:{port}", log)
    try:
        yield running
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    pids = tree(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    for pid in pids:  # whatever of it is left: only the processes this server started
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    process.wait()


async def wait_ready(running: Running, api: Api, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"exited with {running.process.returncode} before answering:\n{running.tail()}")
        try:
            if (await api.http.get(api.ready_path, timeout=2)).is_success:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {timeout:.0f} s:\n{running.tail()}")


# --- the phases ---


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def cell(self) -> str:
        if not self.seconds and not self.errors:
            return ""  # not reached
        if not self.seconds:
            return "none succeeded" + (f" ({self.errors[0]})" if self.errors else "")
        text = f"{ms(statistics.median(self.seconds))} / {ms(percentile(self.seconds, 0.99))}"
        return text + (f" ({len(self.errors)} errors)" if self.errors else "")


@dataclass
class Row:
    key: str
    label: str
    load_before: float
    phase: str = "start"
    reads: Timings = field(default_factory=Timings)
    creates: Timings = field(default_factory=Timings)
    turns: Timings = field(default_factory=Timings)
    rate: float | None = None
    rate_errors: int = 0
    cpu_per_read_ms: float | None = None
    processes: int | None = None
    pss: int | None = None
    off_core: int = 0
    failed: str | None = None


async def timed(timings: Timings, call: Callable[[], Awaitable[httpx.Response]]) -> None:
    started = time.perf_counter()
    try:
        response = await call()
    except (httpx.HTTPError, TimeoutError) as exc:
        timings.errors.append(type(exc).__name__)
        return
    elapsed = time.perf_counter() - started
    if response.is_success:
        timings.seconds.append(elapsed)
    else:
        timings.errors.append(f"{response.status_code}: {response.text[:200]}")


def must(response: httpx.Response) -> None:
    if not response.is_success:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path}: {response.status_code} {response.text[:300]}")


async def workload(api: Api, root: int, args: argparse.Namespace, row: Row) -> None:
    row.phase = "seeding a session"
    seeded = str(uuid.uuid4())
    must(await api.create(seeded))
    must(await api.turn(seeded, "hello"))
    for _ in range(WARMUP):
        must(await api.read(seeded))

    row.phase = "sequential state reads"
    pids = tree(root)
    before = cpu_ticks(pids)
    for _ in range(args.reads):
        await timed(row.reads, lambda: api.read(seeded))
    after = cpu_ticks(tree(root))
    spent = sum(after[pid] - before.get(pid, 0) for pid in after) / TICK
    row.cpu_per_read_ms = spent * 1000 / args.reads

    row.phase = "sessions created"
    for _ in range(args.creates):
        await timed(row.creates, partial(api.create, str(uuid.uuid4())))

    row.phase = "turns"
    talking = str(uuid.uuid4())  # its own session: the seeded one's state stays as the reads saw it
    must(await api.create(talking))
    must(await api.turn(talking, "hi"))  # untimed: opens what a first turn opens (the runtime's stream)
    for _ in range(args.turns):
        await timed(row.turns, lambda: api.turn(talking, "hi"))

    row.phase = f"{args.clients} concurrent clients"
    reads = Timings()
    deadline = time.perf_counter() + args.seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            await timed(reads, lambda: api.read(seeded))

    started_at = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.clients)))
    row.rate = len(reads.seconds) / (time.perf_counter() - started_at)
    row.rate_errors = len(reads.errors)
    row.phase = "done"


async def measure(server: Server, running: Running, args: argparse.Namespace, row: Row) -> None:
    limits = httpx.Limits(max_connections=2 * args.clients, max_keepalive_connections=2 * args.clients)
    async with httpx.AsyncClient(base_url=running.url, timeout=60, limits=limits) as http:
        api = server.api(http)
        try:
            await wait_ready(running, api, args.start_timeout)
            try:
                await asyncio.wait_for(workload(api, running.process.pid, args, row), timeout=args.budget)
            except TimeoutError:
                budget = f"{args.budget:.0f} s" if args.budget < 120 else f"{args.budget / 60:g} min"
                row.failed = f"did not finish the workload in {budget} (at: {row.phase})"
            pids = tree(running.process.pid)
            row.processes, row.pss, row.off_core = len(pids), pss_bytes(pids), len(off_core(pids))
        finally:
            await api.close()


def run_one(server: Server, args: argparse.Namespace) -> Row:
    row = Row(server.key, server.label, os.getloadavg()[0])
    try:
        with started(server, args) as running:
            asyncio.run(measure(server, running, args, row))
    except Exception as exc:
        said = str(exc).strip() or type(exc).__name__
        print(f"  {server.key}: {said}", file=sys.stderr, flush=True)  # with the server's last log lines
        row.failed = f"failed ({row.phase}): {said.splitlines()[0].rstrip(':')}"
    else:
        print(f"  {server.key}: {row.failed or 'done'}", file=sys.stderr, flush=True)
    return row


# --- the peers' venv ---


def peers_venv(path: Path) -> str | None:
    """Makes and fills the peers' venv when it lacks what `requirements.txt` pins: None when ready, else why not."""
    requirements = PEERS / "requirements.txt"
    stamp = path / "bench-requirements.txt"  # what it was last filled with
    wanted = requirements.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    print(f"installing the peers in {path} (a minute or two)...", file=sys.stderr, flush=True)
    try:
        if not python_of(path).exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
        subprocess.run(
            [str(python_of(path)), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        return said[-1] if said else str(exc)
    stamp.write_text(wanted)
    return None


# --- the report ---


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def report(rows: list[Row], skipped: list[tuple[str, str]], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    after = os.getloadavg()
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(*load, *after),
        f"run: {'--quick' if args.quick else 'full'}; each server alone on core {SERVER_CORE}, the client on core "
        f"{CLIENT_CORE}: 1 session seeded, {args.reads} state reads, {args.creates} sessions created, {args.turns} "
        f"turns, {args.clients} clients reading state for {args.seconds:g} s",
        "",
        f"| server (pinned to 1 core) | state p50 / p99 ms | create p50 / p99 ms | turn p50 / p99 ms "
        f"| reads/s, {args.clients} clients | server CPU per read ms | processes, PSS after |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in rows:
        if row.failed and not row.reads.seconds:
            lines.append(f"| {row.label} | {row.failed} | | | | | |")
            continue
        rate = "" if row.rate is None else f"{row.rate:.0f}"
        rate += f" ({row.rate_errors} errors)" if row.rate_errors else ""
        cpu = "" if row.cpu_per_read_ms is None else f"{row.cpu_per_read_ms:.1f}"
        memory = "" if row.pss is None else f"{row.processes}, {pss(row.pss)}"
        cells = [row.reads.cell(), row.creates.cell(), row.turns.cell(), rate, cpu, memory]
        lines.append(f"| {row.label} | {' | '.join(cells)} |")
        if row.failed:
            notes.append(f"- {row.label}: {row.failed}")
        if row.off_core:
            notes.append(f"- {row.label}: {row.off_core} of its processes were not pinned to core {SERVER_CORE}")
        for name, timings in (("reads", row.reads), ("creates", row.creates), ("turns", row.turns)):
            if timings.errors:
                notes.append(f"- {row.label}: {name}: first error {timings.errors[0]}")
    notes += [f"- {label}: not run: {why}" for label, why in skipped]
    loads = ", ".join(f"{row.key} {row.load_before:.2f}" for row in rows)
    lines += ["", f"load average (1 min) as each server started: {loads}"]
    return "\n".join(lines + (["", *notes] if notes else []))


def pss(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests, a few minutes in all (smoke test)")
    parser.add_argument("--servers", default="fastapi,serve,aomi,aomi-packed,langgraph,adk", help="which, in order")
    parser.add_argument("--packed", type=int, default=64, help="sessions per actor of the packed runtime")
    parser.add_argument("--peers-venv", default=str(ROOT / "bench" / ".peers-venv"), help="the peers' venv")
    # (full run, --quick): a flag given explicitly wins over both
    sizes = {"reads": (500, 100), "creates": (200, 30), "turns": (100, 10), "seconds": (10.0, 3.0)}
    sizes["budget"] = (900.0, 180.0)
    parser.add_argument("--reads", type=int, help="sequential state reads (500; --quick 100)")
    parser.add_argument("--creates", type=int, help="sessions created (200; --quick 30)")
    parser.add_argument("--turns", type=int, help="sequential turns (100; --quick 10)")
    parser.add_argument("--seconds", type=float, help="of concurrent reads (10; --quick 3)")
    parser.add_argument("--budget", type=float, help="seconds a server has for its workload (900; --quick 180)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients reading state")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds a server has to answer")
    args = parser.parse_args()
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
    known = {server.key: server for server in servers(args)}
    if unknown := [key for key in chosen if key not in known]:
        parser.error(f"unknown servers {unknown}; known: {', '.join(known)}")
    os.sched_setaffinity(0, {CLIENT_CORE})  # the client on the other core; the servers get core 0 from taskset
    load = os.getloadavg()
    why_not = peers_venv(Path(args.peers_venv)) if any(known[key].peer for key in chosen) else None
    rows, skipped = [], []
    for key in chosen:
        server = known[key]
        if server.peer and why_not:
            skipped.append((server.label, f"the peers' venv could not be made: {why_not}"))
            continue
        print(f"running {key}...", file=sys.stderr, flush=True)
        rows.append(run_one(server, args))
    print(report(rows, skipped, args, load))


if __name__ == "__main__":
    main()
