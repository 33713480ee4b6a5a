"""Idle CPU per actor: what a live session actor costs the node while it does nothing, under Ray settings.

    .venv/bin/python -m bench.idle [--actors 10] [--seconds 20] [--windows 3] [--env NAME=VALUE[,NAME=VALUE...]]...

One local Ray (temp dir `/tmp/aomi-idle-*`, removed afterwards) with Ray's own defaults, whatever this shell
sets: first `--seconds` with no actors (the raylet's and GCS's own baseline), then, for the default and for each
`--env` variant side by side, `--actors` bare async actors and `--actors` `SessionActor`s holding a session (as
the directory starts them), each variant's actors started with its settings (`runtime_env` `env_vars`).
All groups are measured in the same windows, so load from elsewhere on the machine weighs on each alike; rows
run one after another in separate Rays differed by more than the settings did. CPU is read from
`/proc/<pid>/schedstat` (time on a CPU, in ns): utime + stime of `/proc/<pid>/stat` count 10 ms ticks, too
coarse for processes that each run a few ms a second, and read about twice as high here.

Prints, per variant: CPU ms per second per idle actor (the median of the windows, and their range), then the
raylet's and GCS's extra CPU per actor, each kind's PSS, and where one session actor's threads wake.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from typing import Any

KINDS = ("bare", "session")


def _schedstat(pid: int, thread: int | None = None) -> tuple[float, int]:
    path = f"/proc/{pid}/schedstat" if thread is None else f"/proc/{pid}/task/{thread}/schedstat"
    with open(path) as stat:
        on_cpu_ns, _waited_ns, slices = stat.read().split()
    return int(on_cpu_ns) / 1e9, int(slices)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of a process (all its threads) or of one of its threads."""
    return _schedstat(pid, thread)[0]


def switches(pid: int, thread: int) -> int:
    """How often a thread was put on a CPU: its wake-ups, for a thread that sleeps between them."""
    return _schedstat(pid, thread)[1]


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) / 1024 for line in rollup if line.startswith("Pss:"))


def rates(pids: Iterable[int], seconds: float) -> dict[int, float]:
    """CPU milliseconds per second of each process over `seconds`."""
    pids = list(pids)
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {pid: (cpu_seconds(pid) - before[pid]) * 1000 / elapsed for pid in pids}


def thread_wakes(pid: int, seconds: float) -> list[tuple[str, float, float]]:
    """Per thread of one process: its name, wake-ups per second and CPU ms per second, most wake-ups first."""
    names = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as comm:
            names[int(task)] = "main" if int(task) == pid else comm.read().strip()
    before = {t: (cpu_seconds(pid, t), switches(pid, t)) for t in names}
    time.sleep(seconds)
    rows = []
    for t, name in names.items():
        try:
            cpu, woke = cpu_seconds(pid, t), switches(pid, t)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        rows.append((name, (woke - before[t][1]) / seconds, (cpu - before[t][0]) * 1000 / seconds))
    return sorted(rows, key=lambda row: -row[1])


def _pid(handle: Any) -> int:
    # The GCS's actor table knows each actor's process; a SessionActor has no method that would tell it.
    from ray._private.state import actors

    return int(actors(handle._actor_id.hex())["Pid"])


def measure(variants: list[dict[str, str]], actors: int, seconds: float, windows: int) -> None:
    import psutil
    import ray

    from aomi_runtime.actors.session import SessionActor
    from aomi_runtime.actors.store import HistoryStore
    from aomi_runtime.agent.apps import DEFAULT_APP_SPEC
    from aomi_runtime.backends.history import MEMORY_URL

    @ray.remote(num_cpus=0)
    class BareAsync:
        async def ready(self) -> None:
            return None

    names = [",".join(f"{k}={v}" for k, v in env.items()) or "default" for env in variants]
    temp_dir = tempfile.mkdtemp(prefix="aomi-idle-", dir="/tmp")
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
        node = {
            proc.info["name"]: proc.pid
            for proc in psutil.process_iter(["name", "cmdline"])
            if proc.info["name"] in ("raylet", "gcs_server") and temp_dir in " ".join(proc.info["cmdline"] or ())
        }
        store = HistoryStore.remote(DEFAULT_APP_SPEC.name, MEMORY_URL)
        ray.get(store.stats.remote())
        time.sleep(5)  # start-up settles
        quiet = rates(node.values(), seconds)

        handles: dict[tuple[int, str], list[Any]] = {}
        for index, env in enumerate(variants):
            options = {"runtime_env": {"env_vars": env}} if env else {}
            handles[(index, "bare")] = [BareAsync.options(**options).remote() for _ in range(actors)]
            handles[(index, "session")] = [
                SessionActor.options(**options).remote(DEFAULT_APP_SPEC, store, {}) for _ in range(actors)
            ]
        ray.get([h.ready.remote() for index in range(len(variants)) for h in handles[(index, "bare")]])
        ray.get(
            [
                h.open.remote(f"idle-{index}-{i}", None)
                for index in range(len(variants))
                for i, h in enumerate(handles[(index, "session")])
            ]
        )
        pids = {group: [_pid(h) for h in found] for group, found in handles.items()}
        every = [pid for group in pids.values() for pid in group]
        time.sleep(5)

        loads, samples = [], []
        for _ in range(windows):
            samples.append(rates([*node.values(), *every], seconds))
            loads.append(os.getloadavg()[0])

        print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, ", end="")
        print(f"Ray {ray.__version__}; {actors} idle actors of each kind per variant, side by side in one Ray;")
        print(f"{windows} windows of {seconds:g} s; load average (1 min) {min(loads):.1f}-{max(loads):.1f}")
        print()
        print("| variant | bare async actor, ms/s | session actor, ms/s |")
        print("|---|---|---|")
        for index, name in enumerate(names):
            cells = []
            for kind in KINDS:
                per_window = [sum(s[p] for p in pids[(index, kind)]) / actors for s in samples]
                cells.append(f"{statistics.median(per_window):.2f} ({min(per_window):.2f}-{max(per_window):.2f})")
            print(f"| {name} | {' | '.join(cells)} |")
        print()
        total = len(every)
        for name, pid in node.items():
            extra = statistics.median(s[pid] for s in samples) - quiet[pid]
            print(f"{name}: {quiet[pid]:.2f} ms/s with no actors, {extra / total:+.3f} ms/s per idle actor")
        for index, name in enumerate(names):
            sizes = ", ".join(f"{kind} {pss_mb(pids[(index, kind)][0]):.0f}" for kind in KINDS)
            print(f"PSS of one idle actor, MB, {name}: {sizes}")
        for index, name in enumerate(names):
            print(f"\nOne idle session actor's threads, {name}: wake-ups/s, CPU ms/s")
            for thread, woke, cpu in thread_wakes(pids[(index, "session")][0], seconds / 2):
                if woke >= 0.5 or cpu >= 0.05:
                    print(f"  {thread:<18} {woke:7.1f} {cpu:6.2f}")
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=10, help="idle actors of each kind per variant (default 10)")
    parser.add_argument("--seconds", type=float, default=20.0, help="each window's length (default 20)")
    parser.add_argument("--windows", type=int, default=3, help="measurement windows (default 3)")
    parser.add_argument("--env", action="append", default=[], help="a variant: NAME=VALUE[,NAME=VALUE...]")
    args = parser.parse_args()
    # Ray's defaults for the baseline: the variants add settings to it, and a worker cannot unset what it inherits.
    for name in [n for n in os.environ if n.startswith("RAY_") and n not in ("RAY_AUTH_MODE",)]:
        del os.environ[name]
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    variants = [{}] + [dict(pair.split("=", 1) for pair in spec.split(",")) for spec in args.env]
    measure(variants, args.actors, args.seconds, args.windows)


if __name__ == "__main__":
    sys.exit(main())
