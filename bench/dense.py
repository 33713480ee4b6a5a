"""Dense sessions (issue 13): how many live sessions a node holds, and what each costs, at one session per actor
and packed, every figure beside the bare Serve endpoint (the floor) in the same run.

    .venv/bin/python -m bench.dense [--quick] [--sessions-per-actor 1,64] [--steps 100,1000,2000,5000,10000]
                                    [--max-live N] [--curve 1,8,32,64,128,256] [--curve-live 1000]

Run from the repository's root. For each `--sessions-per-actor` value, a local Ray of its own (temp dir
/tmp/aomi-ray-*), Serve on port 8768 with the runtime (SQLite) and the floor (`bench.perf.Bare`), then:

- quiet figures with one live session: floor and cache hit (sequential GETs, interleaved);
- cold loads of a session of 10 and of 1,000 stored messages, every session evicted before each read;
- a burst of 200 new sessions at once (concurrent first `POST /api/chat`), beside 200 concurrent GETs of the floor;
- every session evicted, then live sessions held in steps: sessions of 10 messages written directly with the
  history backend, made live with one state read each, then at each step the floor and cache hits on random
  live sessions (interleaved), the idle CPU of every process of the Ray instance (`bench/cpu.py`: ticks, and
  time on a CPU by thread) and their private memory (USS).

Then, for each `--curve` value not run above, a Ray of its own with `--curve-live` sessions held: the sessions
per actor curve (cache-hit p99, idle CPU and private memory per live session). The App's limits are raised
so that the directory evicts nothing while sessions are held; the machine's memory is watched instead, and a
curve stops, saying so, where fewer than `--min-free-gb` would be left (with one session per actor, a process
each, that comes first). Prints markdown tables, with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import serve

from aomi_runtime.actors.placement import DEFAULT_PLACEMENT_SECONDS
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import DEFAULT_APP, AppSpec, Limits
from aomi_runtime.agent.records import Commit, Message, SessionRecord
from aomi_runtime.backends.history import SqlHistory
from aomi_runtime.serve_app.app import MAX_ONGOING_REQUESTS
from bench.cpu import cpu_spent, ray_processes
from bench.load import local_runtime, percentile
from bench.perf import Bare, cold_loads, store_session, timed

PORT = 8768
STEPS = (100, 1_000, 2_000, 5_000, 10_000)
HISTORY = 10  # messages of each held session
CONTENT = "x" * 100  # each message's text, after its number
STORE_BATCH = 250  # sessions written in one transaction
COLD_SIZES = (10, 1_000)
ACTOR_BYTES = 100 << 20  # a session actor's process, rounded up (74 MB PSS measured): for the memory guard only
SESSION_BYTES = 1 << 20  # a live session in a packed actor, rounded far up: for the memory guard only
SETTLE_SECONDS = 2.0
SESSION_ACTOR = "ray::SessionActor"  # its processes' title (bench.cpu.ray_processes)
# Sizes not given on the command line: the full run's, or --quick's.
FULL: dict[str, Any] = {"steps": list(STEPS), "curve": [1, 8, 32, 64, 128, 256], "curve_live": 1_000,
                        "requests": 300, "idle_seconds": 10.0, "burst": 200, "repeats": 15}  # fmt: skip
QUICK: dict[str, Any] = {"steps": [10, 50], "curve": [1, 8, 64], "curve_live": 50,
                         "requests": 50, "idle_seconds": 3.0, "burst": 20, "repeats": 3}  # fmt: skip


@dataclass
class Step:
    """One count of live sessions held: what was measured there."""

    target: int
    live: int  # as the directory counts them
    actors: int
    floor: list[float]
    hit: list[float]
    idle_ticks: float  # ms of CPU a second, every process of the Ray instance (this driver left out)
    idle_on_cpu: float
    private: int  # bytes, USS of every process of the Ray instance
    processes: int
    actor_private: int  # bytes, USS of the session actors' processes
    actor_processes: int
    available: int  # bytes, the machine's


@dataclass
class Run:
    """Everything measured at one `sessions_per_actor`, in one Ray instance."""

    spa: int
    full: bool
    load_before: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()
    floor: list[float] = field(default_factory=list)
    hit: list[float] = field(default_factory=list)
    cold: list[tuple[int, list[float]]] = field(default_factory=list)
    floor_burst: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_errors: list[str] = field(default_factory=list)
    base: Step | None = None  # no live session, before the held steps
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a curve stopped, evictions, errors


class MemoryGuard:
    """The machine's memory: what a batch of new sessions may take and still leave `floor` bytes available."""

    def __init__(self, floor: int) -> None:
        self.floor = floor

    def short(self, needed: int) -> str:
        """Why `needed` more bytes cannot be taken now, or "" if they can."""
        available = psutil.virtual_memory().available
        if available - needed >= self.floor:
            return ""
        return (
            f"the machine's memory: {available / 2**30:.1f} GiB available, {needed / 2**30:.1f} GiB more would "
            f"leave less than {self.floor / 2**30:.0f} GiB"
        )


def estimate(spa: int) -> int:
    """Bytes a live session may add, for the guard: its share of a new actor, and its own."""
    return ACTOR_BYTES // spa + SESSION_BYTES


def progress(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def held_commit(session_id: str) -> Commit:
    messages = [
        Message(id=i, sender="user" if i % 2 == 0 else "agent", content=f"message {i} {CONTENT}")
        for i in range(HISTORY)
    ]
    return Commit(record=SessionRecord(session_id=session_id, app=DEFAULT_APP), messages=messages)


async def store_histories(history: SqlHistory, ids: list[str]) -> None:
    for start in range(0, len(ids), STORE_BATCH):
        await history.commit_batch(DEFAULT_APP, [held_commit(s) for s in ids[start : start + STORE_BATCH]])


async def read_state(http: httpx.AsyncClient, session_id: str) -> str:
    """One state read: "" if it answered 200, else what went wrong."""
    try:
        response = await http.get("/api/state", headers={"X-Session-Id": session_id})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "" if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"


async def make_live(
    http: httpx.AsyncClient, ids: list[str], concurrency: int, guard: MemoryGuard, spa: int, deadline: float
) -> tuple[list[str], str]:
    """Read each stored session once (its cold load), `concurrency` at a time, while the machine has room:
    the sessions made live, and why it stopped short ("" if it did not)."""
    made: list[str] = []
    problems: list[str] = []
    pending = iter(ids)  # shared by the workers: each id taken once
    shown = time.monotonic()

    async def worker() -> None:
        nonlocal shown
        for session_id in pending:
            if problems:
                return
            if why := guard.short(min(concurrency, len(ids) - len(made)) * estimate(spa)):  # those in flight
                problems.append(why)
                return
            if time.monotonic() > deadline:
                problems.append("the step's time ran out (--step-seconds)")
                return
            if error := await read_state(http, session_id):
                problems.append(f"a state read failed: {error}")
                return
            made.append(session_id)
            if time.monotonic() - shown > 10:
                shown = time.monotonic()
                available = psutil.virtual_memory().available / 2**30
                progress(f"  {len(made)}/{len(ids)} made live, {available:.1f} GiB available")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return made, problems[0] if problems else ""


async def sample(
    http: httpx.AsyncClient, floor: str, ids: list[str], n: int, rng: random.Random
) -> tuple[list[float], list[float]]:
    """`n` GETs of the floor and `n` cache hits (state reads of random sessions of `ids`), interleaved, one at a
    time: both see the same machine."""
    floors: list[float] = []
    hits: list[float] = []
    for _ in range(n):
        floors.append(await timed(lambda: http.get(floor)))
        headers = {"X-Session-Id": rng.choice(ids)}
        hits.append(await timed(lambda headers=headers: http.get("/api/state", headers=headers)))
    return floors, hits


async def at_once(call: Callable[[int], Any], n: int) -> tuple[list[float], list[str]]:
    """`n` calls started together: each one's latency, and the errors."""
    errors: list[str] = []

    async def one(i: int) -> float:
        started = time.perf_counter()
        try:
            response = await call(i)
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(i) for i in range(n)))), errors


def runtime_total(spent: dict[str, float]) -> float:
    return sum(v for name, v in spent.items() if not name.startswith("client"))


async def directory(runtime: Runtime) -> dict[str, Any]:
    stats: dict[str, Any] = (await runtime.stats())[DEFAULT_APP]
    return stats


async def observe(runtime: Runtime, target: int, seconds: float) -> Step:
    """The idle CPU over `seconds` and the private memory of the Ray instance's processes, with what the directory
    holds; the latencies are filled in by the caller."""
    with cpu_spent() as ticks, cpu_spent(exact=True) as on_cpu:
        await asyncio.sleep(seconds)
    private = processes = actor_private = actor_processes = 0
    for name, process in ray_processes().values():
        if name.startswith("client"):
            continue
        try:
            uss = process.memory_full_info().uss
        except psutil.Error:
            continue
        private, processes = private + uss, processes + 1
        if name == SESSION_ACTOR:
            actor_private, actor_processes = actor_private + uss, actor_processes + 1
    stats = await directory(runtime)
    return Step(
        target, stats["live"], stats["actors"], [], [], runtime_total(ticks) / seconds,
        runtime_total(on_cpu) / seconds, private, processes, actor_private, actor_processes,
        psutil.virtual_memory().available,
    )  # fmt: skip


async def close_all(runtime: Runtime) -> None:
    """Evict every session; wait for the emptied actors to stop, down to the warm floor."""
    await runtime.close_sessions()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = await directory(runtime)
        if stats["live"] == 0 and stats["actors"] <= 2:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(SETTLE_SECONDS)


async def burst(http: httpx.AsyncClient, floor: str, run: Run, n: int, guard: MemoryGuard) -> None:
    """`n` new sessions' first chats at once, beside `n` GETs of the floor at once (run twice: the first opens
    the connections both then use)."""
    if why := guard.short(n * estimate(run.spa)):
        fits = max(0, (psutil.virtual_memory().available - guard.floor) // estimate(run.spa))
        run.notes.append(f"burst cut from {n} to {fits} sessions: {why}")
        n = int(fits)
    if n == 0:
        return
    await at_once(lambda _: http.get(floor), n)
    run.floor_burst, _ = await at_once(lambda _: http.get(floor), n)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    run.burst, run.burst_errors = await at_once(
        lambda i: http.post("/api/chat", params={"message": "hi"}, headers={"X-Session-Id": ids[i]}), n
    )
    await asyncio.sleep(SETTLE_SECONDS)  # their turns end before they are evicted


async def measure(args: argparse.Namespace, settings: Any, run: Run, steps: list[int], floor: str) -> None:
    runtime = settings.runtime()
    guard = MemoryGuard(int(args.min_free_gb * 2**30))
    rng = random.Random(run.spa)
    connections = max(args.burst, args.concurrency) + 8
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    url = f"http://127.0.0.1:{args.port}"
    history = SqlHistory.from_url(settings.database_url)
    await history.setup()
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as http:
        try:
            first = str(uuid.uuid4())
            response = await http.post("/api/chat", params={"message": "hello"}, headers={"X-Session-Id": first})
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.5)
            await sample(http, floor, [first], 20, rng)  # warm both paths
            run.floor, run.hit = await sample(http, floor, [first], args.requests, rng)
            if run.full:
                for size in COLD_SIZES:
                    stored = await store_session(history, size)
                    run.cold.append((size, await cold_loads(http, runtime, stored, args.repeats)))
                progress(f"sessions_per_actor={run.spa}: cold loads done; a burst of {args.burst} new sessions")
                await burst(http, floor, run, args.burst, guard)
            await close_all(runtime)
            await hold(args, runtime, http, history, run, steps, floor, guard, rng)
        finally:
            await history.close()


async def hold(
    args: argparse.Namespace,
    runtime: Runtime,
    http: httpx.AsyncClient,
    history: SqlHistory,
    run: Run,
    steps: list[int],
    floor: str,
    guard: MemoryGuard,
    rng: random.Random,
) -> None:
    """Live sessions held in steps, each step measured."""
    run.base = await observe(runtime, 0, args.idle_seconds)
    evicted = (await directory(runtime))["evicted"]
    held: list[str] = []
    for target in steps:
        progress(f"sessions_per_actor={run.spa}: holding {target} live sessions")
        new = [str(uuid.uuid4()) for _ in range(target - len(held))]
        await store_histories(history, new)
        deadline = time.monotonic() + args.step_seconds
        made, why = await make_live(http, new, args.concurrency, guard, run.spa, deadline)
        held += made
        if why:
            run.notes.append(f"held sessions stopped at {len(held)}, short of {target}: {why}")
            if not made:
                break
        await asyncio.sleep(SETTLE_SECONDS)
        floors, hits = await sample(http, floor, held, args.requests, rng)
        step = await observe(runtime, target, args.idle_seconds)
        step.floor, step.hit = floors, hits
        run.steps.append(step)
        if step.live < len(held):
            run.notes.append(f"at {target}: the directory holds {step.live} of the {len(held)} sessions made live")
        if why:
            break
    if (more := (await directory(runtime))["evicted"] - evicted) > 0:
        run.notes.append(f"the directory evicted {more} sessions while they were held")


def run_config(args: argparse.Namespace, spa: int, steps: list[int], full: bool) -> Run:
    """One `sessions_per_actor`, in a Ray instance of its own."""
    run = Run(spa, full, os.getloadavg())
    most = max(steps) + args.burst + 100
    # Nothing evicted while held: the machine's memory is watched instead (MemoryGuard).
    limits = Limits(max_live_sessions=most, max_live_memory_mb=1 << 20, idle_seconds=30 * 86400)
    app = AppSpec(name=DEFAULT_APP, limits=limits)
    progress(f"sessions_per_actor={spa}: starting Ray and Serve")
    try:
        with local_runtime(
            args.port,
            f"aomi-dense-{spa}",
            sessions_per_actor=spa,
            apps=(app,),
            session_placement_seconds=args.placement_seconds,
        ) as settings:
            bare = Bare.options(max_ongoing_requests=MAX_ONGOING_REQUESTS)
            serve.run(bare.bind(), name="bare", route_prefix="/bare")
            asyncio.run(measure(args, settings, run, steps, f"http://127.0.0.1:{args.port}/bare"))
            progress(f"sessions_per_actor={spa}: done; stopping")
    except Exception as exc:
        traceback.print_exc()
        run.notes.append(f"the run failed: {type(exc).__name__}: {exc}")
    run.load_after = os.getloadavg()
    return run


# --- the report --------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def p50_p99(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 0.99)


def ratios(values: list[float], floor: list[float]) -> str:
    (p50, p99), (f50, f99) = p50_p99(values), p50_p99(floor)
    return f"{ms(p50)} / {ms(p99)} | {p50 / f50:.2f}x / {p99 / f99:.2f}x"


def per_session(step: Step, base: Step) -> tuple[float, float, float]:
    """What each live session adds over the run's base (no live session): CPU µs a second (on a CPU), private
    KiB, and the private KiB of its session actor beyond what an actor with no session holds (the base's)."""
    live = max(1, step.live - base.live)
    empty_actor = base.actor_private / base.actor_processes if base.actor_processes else float("nan")
    return (
        (step.idle_on_cpu - base.idle_on_cpu) * 1000 / live,
        (step.private - base.private) / 1024 / live,
        (step.actor_private - step.actor_processes * empty_actor) / 1024 / live,
    )


def held_row(spa: int, step: Step, base: Step) -> str:
    """A row of the held sessions' table; `base` (no live session) has no latencies."""
    floor = "{} / {}".format(*map(ms, p50_p99(step.floor))) if step.floor else "-"
    hit = ratios(step.hit, step.floor) if step.hit else "- | -"
    added = "{:.0f}, {:.0f} / {:.0f}".format(*per_session(step, base)) if step is not base else "-"
    return (
        f"| {spa} | {step.live:,} | {step.actors} | {step.processes} | {floor} | {hit} "
        f"| {step.idle_ticks:.0f} / {step.idle_on_cpu:.0f} | {added} | {step.private / 2**20:,.0f} "
        f"| {step.available / 2**30:.1f} |"
    )


def loads(values: tuple[float, ...]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def report(runs: list[Run], args: argparse.Namespace, load_before: tuple[float, ...]) -> str:
    lines = [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, Ray {ray.__version__}",
        f"load average (1/5/15 min) before: {loads(load_before)}; after: {loads(os.getloadavg())}",
        f"run: {'--quick' if args.quick else 'full'}, SQLite, through Serve's proxy, one driver process as every "
        f"client; held sessions of {HISTORY} messages (~{len(CONTENT) + 10} bytes each); "
        f"placement timeout {args.placement_seconds:g} s",
        "",
        "Live sessions held (floor and cache hit interleaved, sequential; idle CPU of every process of the Ray "
        f"instance over {args.idle_seconds:g} s, by ticks and by time on a CPU; private memory = USS)",
        "",
        "| sessions/actor | live | actors | processes | floor p50 / p99 ms | cache hit p50 / p99 ms "
        "| hit / floor p50 / p99 | idle CPU ms/s, ticks / on CPU "
        "| added per live session: CPU µs/s, private KiB (all / in its actor beyond an empty actor) "
        "| runtime private MiB | available GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.base is not None:
            lines += [held_row(run.spa, step, run.base) for step in [run.base, *run.steps]]
    lines += [
        "",
        "Against the floor (quiet: one live session; the burst's floor: as many GETs of the floor at once)",
        "",
        "| sessions/actor | figure | n | p50 / p99 ms | p50 / p99 against the floor |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        if not run.floor:
            continue
        rows = [("floor: GET /bare", run.floor, run.floor), ("cache hit: GET /api/state", run.hit, run.floor)]
        rows += [(f"cold load, {size:,} stored messages", values, run.floor) for size, values in run.cold]
        if run.burst:
            rows.append((f"floor: {len(run.floor_burst)} GET /bare at once", run.floor_burst, run.floor_burst))
            errors = f" ({len(run.burst_errors)} errors)" if run.burst_errors else ""
            rows.append((f"burst: {len(run.burst)} new sessions' first POST /api/chat at once{errors}",
                         run.burst, run.floor_burst))  # fmt: skip
        lines += [f"| {run.spa} | {name} | {len(v)} | {ratios(v, f)} |" for name, v, f in rows]
    lines += curve(runs, args.curve_live)
    notes = [f"- sessions_per_actor={r.spa}: {note}" for r in runs for note in r.notes]
    notes += [f"- sessions_per_actor={r.spa}: burst error: {r.burst_errors[0]}" for r in runs if r.burst_errors]
    lines += ["", "Notes:", *(notes or ["- none: no curve stopped short, nothing evicted, no error"])]
    lines += [f"- sessions_per_actor={r.spa}: load average before {loads(r.load_before)}, after "
              f"{loads(r.load_after)}" for r in runs]  # fmt: skip
    return "\n".join(lines)


def curve(runs: list[Run], live: int) -> list[str]:
    """Sessions per actor against cache-hit p99, idle CPU and private memory, at `live` sessions (or the most a
    run held, if it stopped short)."""
    lines = [
        "",
        f"Sessions per actor at {live:,} live sessions (or the most held where a run stopped short)",
        "",
        "| sessions/actor | live | actors | floor p99 ms | cache hit p50 / p99 ms | hit p99 / floor p99 "
        "| runtime idle CPU ms/s, on CPU (no session live) "
        "| added per live session: CPU µs/s, private KiB (all / in its actor beyond an empty actor) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    chosen: dict[int, tuple[Step, Step]] = {}
    for run in runs:
        reached = [s for s in run.steps if s.target <= live]
        if run.base is not None and reached and run.spa not in chosen:
            chosen[run.spa] = (reached[-1], run.base)
    for spa, (step, base) in sorted(chosen.items()):
        hit50, hit99 = p50_p99(step.hit)
        floor99 = percentile(step.floor, 0.99)
        cpu, memory, in_actor = per_session(step, base)
        lines.append(
            f"| {spa} | {step.live:,} | {step.actors} | {ms(floor99)} | {ms(hit50)} / {ms(hit99)} "
            f"| {hit99 / floor99:.2f}x | {step.idle_on_cpu:.0f} ({base.idle_on_cpu:.0f}) "
            f"| {cpu:.0f}, {memory:.0f} / {in_actor:.0f} |"
        )
    return lines


def numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--sessions-per-actor", type=numbers, default=[1, 64], help="each run in full")
    parser.add_argument("--steps", type=numbers, help="live sessions held, in steps")
    parser.add_argument("--max-live", type=int, help="hold no more than this many sessions")
    parser.add_argument("--curve", type=numbers, help="sessions per actor, each at --curve-live sessions")
    parser.add_argument("--curve-live", type=int, help="live sessions the curve is taken at")
    parser.add_argument("--requests", type=int, help="floor and cache-hit reads per step")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window per step")
    parser.add_argument("--burst", type=int, help="new sessions at once")
    parser.add_argument("--repeats", type=int, help="cold loads per history length")
    parser.add_argument("--concurrency", type=int, default=16, help="state reads at once, making sessions live")
    parser.add_argument("--min-free-gb", type=float, default=4.0, help="memory the machine keeps available")
    parser.add_argument("--step-seconds", type=float, default=900.0, help="time to make one step's sessions live")
    parser.add_argument("--placement-seconds", type=float, default=DEFAULT_PLACEMENT_SECONDS,
                        help="the runtime's wait for a session actor to start")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=180.0, help="of one HTTP request")
    parser.add_argument("--port", type=int, default=PORT, help="Serve's HTTP port")
    parser.add_argument("--json", help="also write every figure measured to this file")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_live is not None:
        capped = [s for s in args.steps if s < args.max_live]
        args.steps = capped + [args.max_live] * (len(capped) < len(args.steps))
    args.curve_live = min(args.curve_live, max(args.steps))
    load_before = os.getloadavg()
    runs = [run_config(args, spa, args.steps, full=True) for spa in args.sessions_per_actor]
    for spa in args.curve:
        if spa not in args.sessions_per_actor:
            runs.append(run_config(args, spa, [args.curve_live], full=False))
    print(report(runs, args, load_before))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(r) for r in runs], out)


if __name__ == "__main__":
    main()
