"""Tracing's overhead: full chat turns with a tool call over HTTP, with tracing off (no OTEL variables: the floor),
then on (OTEL_EXPORTER_OTLP_ENDPOINT naming a receiver on loopback that decodes every span), then off again (how
much two runs of the same code differ here: the noise), each on a runtime of its own started in this run, the same
load for each; the figures as ratios to the first "off".

    .venv/bin/python -m bench.tracing --quick     # about 4 minutes: three runtimes started, 40 turns and 5 s each

From the repository's root. Per mode: sequential turns (`POST /api/chat` sent -> its `processing_done` seen on a
stream opened before; the scripted model calling `time_now`, then answering: two model spans, a tool span, about
six commit spans, and the HTTP request's span), their CPU by process of the Ray instance (`bench/cpu.py`), then
turns per second with `--clients` sessions each turning one after another for `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from aomi_runtime.agent.timings import TurnTimings
from aomi_runtime.agent.tracing import TRACER_NAME, record_turn, use_tracer
from aomi_runtime.client import AsyncClient
from aomi_runtime.serve_app.ingress import direct_urls, free_port, ray_env
from aomi_runtime.serve_app.launch import APP_NAME
from bench.cpu import cpu_spent, per
from bench.load import local_runtime, percentile
from bench.perf import Watcher
from tests.otlp_receiver import Receiver, running_receiver

PORT = 8771
TURN = '/tool time_now {"topic": "clock"}'
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTEL_SET = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # beside the endpoint: spans leave within 0.2 s of a turn's end


@dataclass
class Mode:
    name: str
    latencies: list[float] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per turn, by process
    turns_per_second: float = 0.0
    spans: int = 0


async def turns_in_a_row(http: httpx.AsyncClient, client: AsyncClient, n: int) -> tuple[list[float], dict[str, float]]:
    watcher = Watcher(await client.session(str(uuid.uuid4())))
    await watcher.open()
    try:
        for _ in range(3):  # warm
            await watcher.full_turn(http, TURN)
        with cpu_spent(exact=True) as spent:
            latencies = [await watcher.full_turn(http, TURN) for _ in range(n)]
        return latencies, per(spent, n)
    finally:
        await watcher.close()


async def turns_per_second(http: httpx.AsyncClient, client: AsyncClient, clients: int, seconds: float) -> float:
    watchers = [Watcher(await client.session(str(uuid.uuid4()))) for _ in range(clients)]
    await asyncio.gather(*(w.open() for w in watchers))
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(watcher: Watcher) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await watcher.full_turn(http, TURN)
            done += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(loop(w) for w in watchers))
        return done / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(w.close() for w in watchers))


def a_tool_turn() -> TurnTimings:
    """The timings of a turn like `TURN`'s: a commit, a model call, a tool call, its result's commits, the answer."""
    timings = TurnTimings()
    for kind, name, extra in [
        ("commit", "commit", {"messages": 2, "events": 2}),
        ("model", "scripted", {"first_token_ms": 0.4, "input_tokens": 120, "output_tokens": 12}),
        ("tool", "time_now", {"call_id": "call_1", "topic": "clock", "status": "ok"}),
        ("commit", "commit", {"messages": 2, "events": 2}),
        ("model", "scripted", {"first_token_ms": 0.3, "input_tokens": 160, "output_tokens": 20}),
        ("commit", "commit", {"messages": 1, "events": 1}),
    ]:
        timings.record(kind, name, time.perf_counter(), **extra)  # type: ignore[arg-type]
    timings.as_json()
    return timings


def in_process(receiver: Receiver, turns: int) -> list[str]:
    """What making a turn's spans costs the session actor's event loop (CPU of the calling thread, per turn), off
    and on, and on with the export thread's work and this process's receiver decoding it all counted too."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    timings = a_tool_turn()

    def per_turn() -> tuple[float, float]:
        thread, process = time.thread_time(), time.process_time()
        for _ in range(turns):
            record_turn(timings, traceparent=TRACEPARENT, session_id="s", app="default", request_id="r")
        return (time.thread_time() - thread) / turns * 1e6, (time.process_time() - process) / turns * 1e6

    use_tracer(None)
    off, _ = per_turn()
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=8 * turns))  # none dropped
    use_tracer(provider.get_tracer(TRACER_NAME))
    try:
        before = time.process_time()
        on, _ = per_turn()
        provider.force_flush()
        everything = (time.process_time() - before) / turns * 1e6
    finally:
        use_tracer(None)
        provider.shutdown()
    return [
        f"| making a turn's spans ({len(list(timings.wall_spans())) + 1}), in process: µs of CPU per turn, "
        f"{turns} turns | {off:.2f} | {on:.1f} | | |",
        f"| the same, with the export and the receiver's decoding | | {everything:.1f} | | |",
    ]


def run_mode(name: str, receiver: Receiver, args: argparse.Namespace) -> Mode:
    for variable in [*OTEL_SET, "OTEL_EXPORTER_OTLP_ENDPOINT"]:
        os.environ.pop(variable, None)
    if name == "on":  # before Ray starts: its processes (the replica, the session actors) inherit them
        os.environ.update({**OTEL_SET, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    os.environ.update(ray_env("direct", args.port))
    mode = Mode(name)
    before = len(receiver.spans)
    with local_runtime(args.port, f"aomi-trace-{name}", proxy_port=free_port("127.0.0.1")):
        (url,) = direct_urls(APP_NAME, "127.0.0.1")

        async def measure() -> None:
            limits = httpx.Limits(max_connections=4 * args.clients, max_keepalive_connections=4 * args.clients)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http, AsyncClient(url) as client:
                mode.latencies, mode.cpu_ms = await turns_in_a_row(http, client, args.turns)
                mode.turns_per_second = await turns_per_second(http, client, args.clients, args.seconds)

        asyncio.run(measure())
        if name == "on":  # every turn's spans arrived: the exporter kept up
            receiver.wait_for(lambda spans: len([s for s in spans[before:] if s.name == "turn"]) > args.turns, 30)
    mode.spans = len(receiver.spans) - before
    return mode


WORKERS = "session actors and other workers"


def merged(cpu_ms: dict[str, float]) -> dict[str, float]:
    """CPU by process, Ray's workers as one: a worker's title moves with what it runs (`python` as it starts,
    `ray::IDLE`, `ray::SessionActor`, its actor's name), so a session actor's CPU lands under any of them."""
    out: dict[str, float] = {}
    for name, value in cpu_ms.items():
        key = WORKERS if "SessionActor" in name or name in ("ray::IDLE", "python") else name
        out[key] = out.get(key, 0.0) + value
    return out


def report(modes: list[Mode], args: argparse.Namespace, load_before: float, spans: list[str]) -> str:
    floor, on, again = modes

    def row(figure: str, values: list[float], digits: int = 1) -> str:
        ratios = " | ".join(f"{v / values[0]:.2f}" if values[0] else "" for v in values[1:])
        return f"| {figure} | {' | '.join(f'{v:.{digits}f}' for v in values)} | {ratios} |"

    lines = [
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"command: python -m bench.tracing{' --quick' if args.quick else ''} ({args.turns} turns in a row, "
        f"{args.clients} clients for {args.seconds:g} s)",
        "",
        "| figure | off | on | off again | on / off | off again / off |",
        "|---|---|---|---|---|---|",
    ]
    for q in (0.5, 0.9, 0.99):
        lines.append(row(f"full turn p{round(q * 100)} ms", [percentile(m.latencies, q) * 1000 for m in modes]))
    lines.append(row(f"turns/s, {args.clients} clients", [m.turns_per_second for m in modes]))
    lines.append(row("CPU ms per turn, all processes", [sum(m.cpu_ms.values()) for m in modes], 2))
    by_process = [merged(m.cpu_ms) for m in modes]
    for name in sorted(by_process[1], key=lambda n: -by_process[1][n]):
        values = [cpu.get(name, 0.0) for cpu in by_process]
        if max(values) >= 0.5:
            lines.append(row(f"CPU ms per turn: {name}", values, 2))
    lines.append(f"| spans received | {floor.spans} | {on.spans} | {again.spans} | | |")
    lines.extend(spans)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples: about 4 minutes")
    parser.add_argument("--turns", type=int, default=200, help="sequential turns per mode")
    parser.add_argument("--clients", type=int, default=8, help="sessions turning at once, for turns/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="per turns/s measurement")
    parser.add_argument("--port", type=int, default=PORT, help="the runtime's HTTP port")
    args = parser.parse_args()
    if args.quick:
        args.turns, args.seconds = 40, 5.0
    load_before = os.getloadavg()[0]
    with running_receiver() as receiver:
        spans = in_process(receiver, args.turns * 50)
        modes = [run_mode(name, receiver, args) for name in ("off", "on", "off")]
    print(report(modes, args, load_before, spans))


if __name__ == "__main__":
    main()
