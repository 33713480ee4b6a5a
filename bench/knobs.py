"""Issue 15's knobs, each measured on the runtime against Ray's defaults in the same run, to keep or drop.

    .venv/bin/python -m bench.knobs [--quick] [--knobs baseline,no-uvloop,...] [--aomi-args "..."] [--pinned]

Run from the repository's root. The runtime as the README starts it (`aomi-runtime serve`, `--aomi-args`
appended), started once per knob, alone, with bench/peers's machinery (its own temporary directory, stopped
before the next): the baseline first and again last (how far the machine drifted meanwhile), each knob between.
Per knob: sequential cache-hit reads of a session's state (p50, p99, the server's CPU per read), turns (send,
then poll until the reply is readable) and reads/s with 32 concurrent clients, each also as a ratio to the first
baseline; and whether httptools' parser is mapped in Serve's proxy and ingress replica (uvicorn's `http="auto"`
took it). uvloop is Ray's default loop in every worker (`RAY_USE_UVLOOP`, on where uvloop is installed).
Unpinned by default: the knobs are about the 2-core node (`--pinned`: the server on core 0, the client on 1).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys

from bench.peers.apis import AomiApi
from bench.peers.phases import Row
from bench.peers.report import cell, cpu, header, ratio
from bench.peers.runner import run_one
from bench.peers.servers import Server, aomi

# key -> (what it changes, bench/peers/tuned.py's options or None, environment)
KNOBS: dict[str, tuple[str, list[str] | None, dict[str, str]]] = {
    "baseline": (
        "Ray's defaults (uvloop, httptools where installed), max_ongoing_requests 1000, 1 replica",
        None,
        {},
    ),
    "no-uvloop": ("`RAY_USE_UVLOOP=0`: asyncio's own loop in every Ray worker", None, {"RAY_USE_UVLOOP": "0"}),
    "throughput": ("`RAY_SERVE_THROUGHPUT_OPTIMIZED=1`", None, {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    "max-ongoing-100": ("the ingress's `max_ongoing_requests` 100", ["--max-ongoing", "100"], {}),
    "max-ongoing-5000": ("the ingress's `max_ongoing_requests` 5000", ["--max-ongoing", "5000"], {}),
    "replicas-2": ("two ingress replicas", ["--replicas", "2"], {}),
}


def knob_server(key: str, args: argparse.Namespace) -> Server:
    label, tuned, env = KNOBS[key]
    command = aomi(shlex.split(args.aomi_args), tuned)
    return Server(key, label, AomiApi, command, announces=True, env=env)


def mapped(row: Row) -> str:
    """Whether Serve's proxy and replica mapped httptools' parser, e.g. `proxy: httptools; replica: httptools`."""
    found = []
    for name, libraries in sorted(row.libraries.items()):
        short = "proxy" if name == "ray::ProxyActor" else "replica"
        found.append(f"{short}: {' '.join(sorted(lib.split('/')[0] for lib in libraries)) or 'no httptools'}")
    return "; ".join(dict.fromkeys(found)) or "-"


def table(rows: list[Row], args: argparse.Namespace) -> list[str]:
    base = rows[0]
    lines = [
        "",
        f"| knob | ingress | state p50 / p99 ms | CPU ms / read | turn p50 / p99 ms | reads/s, {args.clients} clients "
        "| p50 / baseline | CPU / baseline | reads/s / baseline | httptools in Serve's processes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.failed and not row.reads.seconds:
            lines.append(f"| {row.key}: {row.label} | | {row.failed} | | | | | | | |")
            continue
        ratios = [
            ratio(row.reads.p50, base.reads.p50),
            ratio(row.reads.cpu_ms, base.reads.cpu_ms),
            ratio(row.rate, base.rate),
        ]
        cells = [
            row.path,
            cell(row.reads),
            cpu(row.reads),
            cell(row.turns),
            "" if row.rate is None else f"{row.rate:.0f}",
            *("-" if r is None else f"{r:.2f}x" for r in ratios),
            mapped(row),
        ]
        lines.append(f"| {row.key}: {row.label} | {' | '.join(cells)} |")
    rates = [row.rate for row in rows if row.key == "baseline" and row.rate]
    if len(rates) > 1:
        spread = (max(rates) - min(rates)) / statistics.mean(rates)
        lines += ["", f"baseline reads/s first and last: {', '.join(f'{r:.0f}' for r in rates)} ({spread:.0%} apart)"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke test")
    parser.add_argument("--knobs", default=",".join(k for k in KNOBS if k != "baseline"), help="which, besides it")
    parser.add_argument("--aomi-args", default="", help='more `aomi-runtime serve` arguments, e.g. "--ingress proxy"')
    parser.add_argument("--pinned", action="store_true", help="the server on core 0, the client on core 1")
    parser.add_argument("--reads", type=int, help="sequential state reads (300; --quick 100)")
    parser.add_argument("--turns", type=int, help="sequential turns (30; --quick 5)")
    parser.add_argument("--seconds", type=float, help="of concurrent reads (10; --quick 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients reading state")
    args = parser.parse_args()
    sizes = {"reads": (300, 100), "turns": (30, 5), "seconds": (10.0, 3.0)}
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    chosen = [key.strip() for key in args.knobs.split(",") if key.strip()]
    if unknown := [key for key in chosen if key not in KNOBS]:
        parser.error(f"unknown knobs {unknown}; known: {', '.join(KNOBS)}")
    # What bench/peers's phases read besides the sizes: no sessions created, no SSE or revalidation phases.
    args.creates, args.extras, args.poll_interval, args.budget, args.start_timeout = 0, False, 0.0, 600.0, 180.0
    mode = "pinned" if args.pinned else "unpinned"
    load = os.getloadavg()
    rows = []
    for key in ["baseline", *chosen, "baseline"]:
        print(f"running {key}...", flush=True, file=sys.stderr)
        rows.append(run_one(knob_server(key, args), mode, args, {}))
    print("\n".join([*header(args, load), f"mode: {mode}", *table(rows, args)]))


if __name__ == "__main__":
    main()
