"""What each server is asked, one phase after another, and what is kept of it (a `Row` of the table).

Every server: one session seeded (created, one turn, 20 untimed reads), sequential reads of its state, turns one
after another in a session of their own (send, then poll the state until the reply is readable), `clients`
concurrent loops reading the seeded session's state (spread over every URL the server announced: with direct
ingress each replica has its own), the runtime's own phases (below), and last sessions created one after
another. Server CPU per operation is the user +
system time of all its processes over a phase, idle work included, divided by the operations.

The runtime also: SSE delivery (`POST /api/system` -> its frame on the session's stream), and the issue's
revalidation figure: a 10,000-message session's unchanged snapshot asked with `If-None-Match` (304) against a
cache hit of a 10-message one, both written directly into the runtime's SQLite file with the history backend.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import count

import httpx

from .apis import AomiApi, Api
from .procs import CpuMeter

WARMUP = 20  # untimed reads before the timed ones
TOKENS = count()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def token() -> str:
    """A message of its own for each turn, so that its reply is found in the state."""
    return f"hi{next(TOKENS)}x{uuid.uuid4().hex[:6]}"


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu_ms: float | None = None  # the server's CPU per operation

    @property
    def p50(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def p99(self) -> float | None:
        return percentile(self.seconds, 0.99) if self.seconds else None


@dataclass
class Row:
    key: str
    label: str
    mode: str  # pinned, unpinned
    load_before: float
    floor: bool = False  # a bare Serve endpoint: what the runtime's ratios are taken against
    reads_only: bool = False  # only the state reads: no turns, no sessions created
    phase: str = "start"
    path: str = ""  # how a request enters: proxy, direct (the replica itself), ...
    urls: int = 1
    reads: Timings = field(default_factory=Timings)
    creates: Timings = field(default_factory=Timings)
    turns: Timings = field(default_factory=Timings)
    rate: float | None = None
    rate_errors: int = 0
    rate_error: str | None = None  # the first
    processes: int | None = None
    pss: int | None = None
    off_core: int = 0
    failed: str | None = None
    extras: dict[str, Timings] = field(default_factory=dict)  # the runtime's own figures, by name
    libraries: dict[str, set[str]] = field(default_factory=dict)  # Serve's processes (by title): what they mapped
    notes: list[str] = field(default_factory=list)


SSE_SENT = "SSE: POST /api/system sent -> frame received"
SSE_ANSWERED = "SSE: POST /api/system answered -> frame received"
HIT_10 = "cache hit, 10-message session"
REVALIDATE_10K = "304 revalidation, 10,000-message session"
FULL_10K = "full read, 10,000-message session"


async def timed(timings: Timings, call: Callable[[], Awaitable[httpx.Response]], expect: int | None = None) -> None:
    started = time.perf_counter()
    try:
        response = await call()
    except (httpx.HTTPError, TimeoutError) as exc:
        timings.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        return
    elapsed = time.perf_counter() - started
    if response.status_code == expect or (expect is None and response.is_success):
        timings.seconds.append(elapsed)
    else:
        timings.errors.append(f"{response.status_code}: {response.text[:200]}")


async def metered(timings: Timings, meter: CpuMeter, calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Each of `calls` in turn, the server's CPU per call kept in `timings`."""
    if not calls:
        return
    meter.start()
    for call in calls:
        await call()
    timings.cpu_ms = meter.seconds() * 1000 / max(1, len(calls))


def must(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path}: {response.status_code} {response.text[:300]}")
    return response


async def workload(apis: list[Api], meter: CpuMeter, args: argparse.Namespace, row: Row, database: str | None) -> None:
    api = apis[0]
    row.phase = "seeding a session"
    seeded = str(uuid.uuid4())
    must(await api.create(seeded))
    if not row.reads_only:
        must(await api.turn(seeded, token()))
    for _ in range(WARMUP):
        must(await api.read(seeded))

    row.phase = "sequential state reads"
    await metered(row.reads, meter, [partial(timed, row.reads, partial(api.read, seeded))] * args.reads)

    if not row.reads_only:
        row.phase = "turns"
        talking = str(uuid.uuid4())  # its own session: the seeded one's state stays as the reads see it
        must(await api.create(talking))
        must(await api.turn(talking, token()))  # untimed: the first turn of a session
        turns = [partial(timed, row.turns, partial(api.turn, talking, token())) for _ in range(args.turns)]
        await metered(row.turns, meter, turns)

    row.phase = f"{args.clients} concurrent clients"
    await concurrent_reads(apis, seeded, args, row)

    if isinstance(api, AomiApi) and args.extras and not row.reads_only:
        row.phase = "SSE delivery"
        await sse_delivery(api, talking, args.turns, row)
        if database is None:
            row.notes.append("revalidation not measured: the runtime did not print a SQLite history file")
        else:
            row.phase = "revalidation"
            await revalidation(api, meter, database, args.reads, row)

    if not row.reads_only:
        # Last: a new session may be a process of its own (the runtime's default), which would weigh on every
        # figure after it.
        row.phase = "sessions created"
        creates = [partial(timed, row.creates, partial(api.create, str(uuid.uuid4()))) for _ in range(args.creates)]
        await metered(row.creates, meter, creates)
    row.phase = "done"


async def concurrent_reads(apis: list[Api], session_id: str, args: argparse.Namespace, row: Row) -> None:
    """`args.clients` loops reading the session's state for `args.seconds`, spread over `apis` (one per URL)."""
    reads = Timings()
    deadline = time.perf_counter() + args.seconds

    async def client(api: Api) -> None:
        while time.perf_counter() < deadline:
            await timed(reads, partial(api.read, session_id))

    started_at = time.perf_counter()
    await asyncio.gather(*(client(apis[i % len(apis)]) for i in range(args.clients)))
    row.rate = len(reads.seconds) / (time.perf_counter() - started_at)
    row.rate_errors = len(reads.errors)
    row.rate_error = reads.errors[0] if reads.errors else None


async def sse_delivery(api: AomiApi, session_id: str, n: int, row: Row) -> None:
    sent, answered = row.extras.setdefault(SSE_SENT, Timings()), row.extras.setdefault(SSE_ANSWERED, Timings())
    await api.system_delivery(session_id)  # warm: opens the stream
    for _ in range(n):
        to_frame, from_answer = await api.system_delivery(session_id)
        sent.seconds.append(to_frame)
        answered.seconds.append(from_answer)


async def revalidation(api: AomiApi, meter: CpuMeter, database: str, n: int, row: Row) -> None:
    from aomi_runtime.backends.history import SqlHistory
    from bench.perf import store_session  # imports Ray: only where the runtime is measured

    history = SqlHistory.from_url(database)
    try:
        await history.setup()
        small, large = await store_session(history, 10), await store_session(history, 10_000)
    finally:
        await history.close()
    for session_id in (small, large):  # each loaded once (a cold load), then live
        for _ in range(WARMUP):
            must(await api.read(session_id))
    hits = row.extras.setdefault(HIT_10, Timings())
    await metered(hits, meter, [partial(timed, hits, partial(api.read, small))] * n)
    etag = must(await api.read(large)).headers.get("etag")
    if etag is None:
        row.notes.append("revalidation not measured: GET /api/state gave no ETag")
        return
    revalidations = row.extras.setdefault(REVALIDATE_10K, Timings())
    await metered(revalidations, meter, [partial(timed, revalidations, partial(api.read, large, etag), 304)] * n)
    full = row.extras.setdefault(FULL_10K, Timings())
    await metered(full, meter, [partial(timed, full, partial(api.read, large))] * max(1, n // 5))
