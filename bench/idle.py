"""Idle CPU per actor: what a live session actor costs the node while it does nothing, under Ray settings.

    .venv/bin/python -m bench.idle [--actors 20] [--seconds 30] [--env NAME=VALUE[,NAME=VALUE...]]...

Each variant (the default, then one per `--env`) runs in a child process with its own local Ray (temp dir
`/tmp/aomi-idle-*`, removed afterwards): first `--seconds` with no actors (the raylet's and GCS's own
baseline), then with `--actors` each of a bare async actor, a bare sync actor and a `SessionActor` holding a
session (as the directory starts them). CPU comes from `/proc/<pid>/schedstat` (time on a CPU, in ns), which other load
on the machine does not inflate the way it inflates latencies. Prints per variant: CPU ms per second per actor
of each kind, and the raylet's and GCS's extra CPU per actor, then where one idle actor's threads wake.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

KINDS = ("async", "sync", "session")


def _schedstat(pid: int, thread: int | None) -> tuple[float, int]:
    path = f"/proc/{pid}/schedstat" if thread is None else f"/proc/{pid}/task/{thread}/schedstat"
    with open(path) as stat:
        on_cpu_ns, _waited_ns, slices = stat.read().split()
    return int(on_cpu_ns) / 1e9, int(slices)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of a process (all its threads) or of one thread. From schedstat, in nanoseconds: utime + stime
    of /proc/<pid>/stat count 10 ms ticks, too coarse for processes that each run a few ms a second."""
    return _schedstat(pid, thread)[0]


def switches(pid: int, thread: int) -> int:
    """How often a thread was put on a CPU: its wake-ups, for a thread that sleeps between them."""
    return _schedstat(pid, thread)[1]


def threads(pid: int) -> dict[int, str]:
    names = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as comm:
            names[int(task)] = comm.read().strip()
    return names


def pss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) << 10 for line in rollup if line.startswith("Pss:"))


def rates(pids: Iterable[int], seconds: float) -> dict[int, float]:
    """CPU milliseconds per second of each process over `seconds`."""
    pids = list(pids)
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {pid: (cpu_seconds(pid) - before[pid]) * 1000 / elapsed for pid in pids}


def thread_wakes(pid: int, seconds: float) -> list[dict[str, Any]]:
    """Per thread of one process: CPU ms/s and context switches (wake-ups) per second."""
    names = threads(pid)
    before = {t: (cpu_seconds(pid, t), switches(pid, t)) for t in names}
    time.sleep(seconds)
    rows = []
    for t, name in names.items():
        try:
            cpu, woke = cpu_seconds(pid, t), switches(pid, t)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        rows.append(
            {
                "thread": "main" if t == pid else name,
                "ms_per_s": (cpu - before[t][0]) * 1000 / seconds,
                "wakes_per_s": (woke - before[t][1]) / seconds,
            }
        )
    return sorted(rows, key=lambda row: -row["wakes_per_s"])


def measure(actors: int, seconds: float) -> dict[str, Any]:
    """In this process: start Ray, measure the idle node, start the actors, measure again. The environment
    (RAY_* settings) is this process's, which the raylet and its workers inherit."""
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

    @ray.remote(num_cpus=0)
    class BareSync:
        def ready(self) -> None:
            return None

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

        handles: dict[str, list[Any]] = {
            "async": [BareAsync.remote() for _ in range(actors)],
            "sync": [BareSync.remote() for _ in range(actors)],
            "session": [SessionActor.remote(DEFAULT_APP_SPEC, store, {}) for _ in range(actors)],
        }
        ray.get([h.open.remote(f"idle-{i}", False, None) for i, h in enumerate(handles["session"])])
        ray.get([h.ready.remote() for kind in ("async", "sync") for h in handles[kind]])
        raylet = psutil.Process(node["raylet"])
        pids = {
            kind: _actor_pids(raylet, cls)
            for kind, cls in zip(KINDS, ("BareAsync", "BareSync", "SessionActor"), strict=True)
        }
        assert all(len(found) == actors for found in pids.values()), {k: len(v) for k, v in pids.items()}
        time.sleep(5)
        busy = rates([*node.values(), *(p for kind in KINDS for p in pids[kind])], seconds)
        total = 3 * actors
        return {
            "env": {k: v for k, v in os.environ.items() if k.startswith("RAY_") and k != "RAY_ADDRESS"},
            "load": os.getloadavg(),
            "per_actor": {kind: sum(busy[p] for p in pids[kind]) / actors for kind in KINDS},
            "node_per_actor": {name: (busy[pid] - quiet[pid]) / total for name, pid in node.items()},
            "node_quiet": {name: quiet[pid] for name, pid in node.items()},
            "pss_mb": {kind: pss_bytes(pids[kind][0]) / 2**20 for kind in KINDS},
            "threads": thread_wakes(pids["session"][0], seconds / 2),
        }
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _actor_pids(raylet: Any, cls: str) -> list[int]:
    # Workers are the raylet's children, titled "ray::<class>" (another Ray on the machine has its own raylet).
    title = f"ray::{cls}"
    return [p.pid for p in raylet.children() if p.cmdline() and p.cmdline()[0].split(".")[0] == title]


def run_variant(env: dict[str, str], actors: int, seconds: float) -> dict[str, Any]:
    child_env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **env}
    done = subprocess.run(
        [sys.executable, "-m", "bench.idle", "--child", "--actors", str(actors), "--seconds", str(seconds)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise RuntimeError(f"The variant {env or 'default'} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["variant"] = ",".join(f"{k}={v}" for k, v in env.items()) or "default"
    return result


HEADER = [
    "| variant | async ms/s | sync ms/s | session ms/s | raylet ms/s per actor | GCS ms/s per actor | load 1/5/15 |",
    "|---|---|---|---|---|---|---|",
]


def row(r: dict[str, Any]) -> str:
    a, node = r["per_actor"], r["node_per_actor"]
    return (
        f"| {r['variant']} | {a['async']:.2f} | {a['sync']:.2f} | {a['session']:.2f} "
        f"| {node.get('raylet', 0):.2f} | {node.get('gcs_server', 0):.2f} | {' '.join(f'{x:.2f}' for x in r['load'])} |"
    )


def details(r: dict[str, Any]) -> list[str]:
    lines = [f"{r['variant']}: PSS of one idle actor, MB: {', '.join(f'{k} {v:.0f}' for k, v in r['pss_mb'].items())}"]
    lines.append(f"{r['variant']}: one idle session actor's threads: wake-ups/s, CPU ms/s")
    for t in r["threads"]:
        if t["wakes_per_s"] >= 0.5 or t["ms_per_s"] >= 0.05:
            lines.append(f"  {t['thread']:<18} {t['wakes_per_s']:7.1f} {t['ms_per_s']:6.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=20, help="idle actors of each kind (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="each measurement's length (default 30)")
    parser.add_argument("--env", action="append", default=[], help="a variant: NAME=VALUE[,NAME=VALUE...]")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.actors, args.seconds)))
        return
    variants = [{}] + [dict(pair.split("=", 1) for pair in spec.split(",")) for spec in args.env]
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; ", end="")
    print(f"{args.actors} idle actors of each kind, {args.seconds:g} s", flush=True)
    print("\n".join(HEADER), flush=True)
    notes = []
    for env in variants:  # each row as soon as it is measured: a run takes minutes
        result = run_variant(env, args.actors, args.seconds)
        print(row(result), flush=True)
        notes += details(result)
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
