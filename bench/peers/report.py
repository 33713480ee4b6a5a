"""The markdown the run prints: the machine and its load, a table per mode, the runtime's own figures, and issue
15's targets, each as a ratio to what it is held against in the same run (met or not met)."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

from .phases import HIT_10, REVALIDATE_10K, SSE_ANSWERED, SSE_SENT, Row, Timings
from .servers import CLIENT_CORE, SERVER_CORE

PEERS = ("langgraph", "adk", "adk-sqlite")
RUNTIME = "aomi"  # the runtime as the README starts it: the row the targets are about
MODES = {
    "pinned": f"each server alone on core {SERVER_CORE}, the client on core {CLIENT_CORE}",
    "unpinned": "each server alone, server and client free to use both cores",
}


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    value = seconds * 1000
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def cell(timings: Timings) -> str:
    if not timings.seconds:
        return f"none succeeded ({timings.errors[0]})" if timings.errors else ""
    text = f"{ms(timings.p50)} / {ms(timings.p99)}"
    return text + (f" ({len(timings.errors)} errors)" if timings.errors else "")


def cpu(timings: Timings) -> str:
    return "" if timings.cpu_ms is None else f"{timings.cpu_ms:.1f}"


def size(pss: int) -> str:
    return f"{pss / 2**30:.1f} GB" if pss >= 2**30 else f"{pss / 2**20:.0f} MB"


def header(args: argparse.Namespace, load: tuple[float, ...]) -> list[str]:
    after = os.getloadavg()
    sizes = (
        f"1 session seeded, {args.reads} state reads, {args.creates} sessions created, {args.turns} turns (sent, "
        f"then the state polled until the reply is readable), {args.clients} clients reading state for "
        f"{args.seconds:g} s"
    )
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Ray {version('ray')}",
        "load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(*load, *after),
        f"run: {'--quick' if args.quick else 'full'}; runtime arguments: `{args.aomi_args or '(none)'}`; {sizes}",
    ]


def mode_table(mode: str, rows: list[Row], args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        f"**{mode}**: {MODES[mode]}",
        "",
        "| server | ingress | state p50 / p99 ms | CPU ms / read | create p50 / p99 ms | CPU ms / create "
        f"| turn p50 / p99 ms | CPU ms / turn | reads/s, {args.clients} clients | processes, PSS after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in rows:
        path = row.path + (f" ({row.urls} URLs)" if row.urls > 1 else "")
        if row.failed and not row.reads.seconds:
            lines.append(f"| {row.label} | {path} | {row.failed} | | | | | | | |")
            continue
        rate = "" if row.rate is None else f"{row.rate:.0f}"
        rate += f" ({row.rate_errors} errors)" if row.rate_errors else ""
        memory = "" if row.pss is None else f"{row.processes}, {size(row.pss)}"
        cells = [cell(row.reads), cpu(row.reads), cell(row.creates), cpu(row.creates), cell(row.turns)]
        lines.append(f"| {row.label} | {path} | {' | '.join([*cells, cpu(row.turns), rate, memory])} |")
        notes += [f"- {row.label}: {note}" for note in row.notes]
        if row.failed:
            notes.append(f"- {row.label}: {row.failed}")
        if row.off_core:
            notes.append(f"- {row.label}: {row.off_core} of its processes were not pinned to core {SERVER_CORE}")
        for name, timings in (("reads", row.reads), ("creates", row.creates), ("turns", row.turns)):
            if timings.errors:
                notes.append(f"- {row.label}: {name}: first error {timings.errors[0]}")
        if row.rate_error:
            notes.append(f"- {row.label}: {args.clients} clients: first error {row.rate_error}")
    loads = ", ".join(f"{row.key} {row.load_before:.2f}" for row in rows)
    lines += ["", f"load average (1 min) as each server started: {loads}"]
    return lines + (["", *notes] if notes else [])


def extras_table(rows: list[Row]) -> list[str]:
    found = [(row, name, timings) for row in rows for name, timings in row.extras.items()]
    if not found:
        return []
    lines = ["", "| server | mode | figure | n | p50 / p99 ms | CPU ms / request |", "|---|---|---|---|---|---|"]
    for row, name, timings in found:
        n = len(timings.seconds)
        lines.append(f"| {row.label} | {row.mode} | {name} | {n} | {cell(timings)} | {cpu(timings)} |")
    return lines


@dataclass
class Target:
    name: str
    goal: str
    measure: Callable[[dict[str, Row]], tuple[str, float | None, bool | None]]  # -> figure, ratio, met


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def floor_of(rows: dict[str, Row]) -> Row | None:
    """The bare Serve endpoint on the path the runtime's requests take (proxy or direct ingress)."""
    runtime = rows.get(RUNTIME)
    floors = [row for row in rows.values() if row.floor]
    same = [row for row in floors if runtime is not None and row.path == runtime.path]
    return same[0] if same else None


def against(
    value: Callable[[Row], float | None], other: Callable[[dict[str, Row]], Row | None], at_most: float, scale: float
) -> Callable[[dict[str, Row]], tuple[str, float | None, bool | None]]:
    """The runtime's `value` against another row's, as a ratio that meets the target when <= `at_most` (or, with a
    negative `at_most`, when >= its absolute value); `scale` turns the values into the units shown."""

    def measure(rows: dict[str, Row]) -> tuple[str, float | None, bool | None]:
        runtime, base = rows.get(RUNTIME), other(rows)
        if runtime is None or base is None:
            return "not measured", None, None
        mine, theirs = value(runtime), value(base)
        r = ratio(mine, theirs)
        figure = f"{fmt(mine, scale)} vs {fmt(theirs, scale)} ({base.key})"
        return figure, r, None if r is None else (r <= at_most if at_most > 0 else r >= -at_most)

    return measure


def fmt(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.1f}" if value * scale < 1000 else f"{value * scale:,.0f}"


def extra(name: str) -> Callable[[Row], float | None]:
    return lambda row: row.extras[name].p50 if name in row.extras else None


def fastest_peer(rows: dict[str, Row]) -> Row | None:
    peers = [rows[key] for key in PEERS if key in rows and rows[key].rate]
    return max(peers, key=lambda row: row.rate or 0.0) if peers else None


def sse(rows: dict[str, Row]) -> tuple[str, float | None, bool | None]:
    runtime = rows.get(RUNTIME)
    if runtime is None or SSE_SENT not in runtime.extras:
        return "not measured", None, None
    sent, answered = extra(SSE_SENT)(runtime), extra(SSE_ANSWERED)(runtime)
    return f"{ms(sent)} ms ({ms(answered)} from the POST's answer)", None, sent is not None and sent < 0.002


def replicas(one: str, two: str) -> Callable[[dict[str, Row]], tuple[str, float | None, bool | None]]:
    def measure(rows: dict[str, Row]) -> tuple[str, float | None, bool | None]:
        if one not in rows or two not in rows:
            return "not measured", None, None
        r = ratio(rows[two].rate, rows[one].rate)
        return f"{fmt(rows[two].rate, 1)} vs {fmt(rows[one].rate, 1)} reads/s", r, None if r is None else r >= 1.0

    return measure


def revalidation(rows: dict[str, Row]) -> tuple[str, float | None, bool | None]:
    runtime = rows.get(RUNTIME)
    if runtime is None or REVALIDATE_10K not in runtime.extras or HIT_10 not in runtime.extras:
        return "not measured", None, None
    sent, hit = runtime.extras[REVALIDATE_10K], runtime.extras[HIT_10]
    r = ratio(sent.p50, hit.p50)
    figure = f"{ms(sent.p50)} vs {ms(hit.p50)} ms; CPU {cpu(sent)} vs {cpu(hit)} ms"
    return figure, r, None if r is None else r <= 1.0


def adk(rows: dict[str, Row]) -> Row | None:
    return rows.get("adk")


def state_p50(row: Row) -> float | None:
    return row.reads.p50


def cpu_per_read(row: Row) -> float | None:
    return row.reads.cpu_ms


def reads_per_second(row: Row) -> float | None:
    return row.rate


def turn_p50(row: Row) -> float | None:
    return row.turns.p50


SAME_PATH = "bare Serve (same path)"
TARGETS = [
    Target(f"cache-hit GET /api/state p50 / {SAME_PATH}, ms", "<= 1.2x", against(state_p50, floor_of, 1.2, 1000)),
    Target(f"server CPU per read / {SAME_PATH}, ms", "<= 1.5x", against(cpu_per_read, floor_of, 1.5, 1)),
    Target(f"reads/s at 32 clients / {SAME_PATH}", ">= 0.9x", against(reads_per_second, floor_of, -0.9, 1)),
    Target("reads/s at 32 clients / fastest peer", ">= 0.5x", against(reads_per_second, fastest_peer, -0.5, 1)),
    Target("full turn p50 (send, poll until readable) / ADK's, ms", "<= 2x", against(turn_p50, adk, 2.0, 1000)),
    Target("SSE: POST /api/system sent -> frame p50", "< 2 ms", sse),
    Target("304 of a 10,000-message snapshot / cache hit of a 10-message one, p50", "<= 1x", revalidation),
    Target("reads/s, runtime with 2 ingress replicas / 1", ">= 1x", replicas(RUNTIME, "aomi-2")),
    Target("reads/s, bare Serve direct ingress, 2 replicas / 1", ">= 1x", replicas("serve-direct", "serve-direct-2")),
    Target("reads/s, bare Serve behind HAProxy, 2 replicas / 1", ">= 1x", replicas("serve-haproxy", "serve-haproxy-2")),
]


def targets_table(by_mode: dict[str, list[Row]]) -> list[str]:
    modes = [mode for mode in MODES if mode in by_mode]
    lines = [
        "",
        "Issue 15's targets (the runtime as the README starts it; ratios to what each is held against, same run)",
        "",
        f"| target | goal | {' | '.join(f'{mode}: figure | ratio | met' for mode in modes)} |",
        "|---|---|" + "---|---|---|" * len(modes),
    ]
    for target in TARGETS:
        cells = []
        for mode in modes:
            figure, r, met = target.measure({row.key: row for row in by_mode[mode]})
            cells += [figure, "-" if r is None else f"{r:.2f}x", {True: "met", False: "not met", None: "-"}[met]]
        lines.append(f"| {target.name} | {target.goal} | {' | '.join(cells)} |")
    return lines


def report(by_mode: dict[str, list[Row]], skipped: list[str], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    lines = header(args, load)
    for mode, rows in by_mode.items():
        lines += mode_table(mode, rows, args)
    lines += extras_table([row for rows in by_mode.values() for row in rows])
    lines += targets_table(by_mode)
    if skipped:
        lines += ["", *[f"- not run: {why}" for why in skipped]]
    return "\n".join(lines)
