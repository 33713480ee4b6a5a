"""CPU time a request costs, by process of the Ray instance (the proxy, the replica, the session actor, ...).

Unlike latency, CPU seconds hardly move with other load on the machine, and on a node that Serve saturates
they are what bounds reads per second: a 2-core node has 2,000 ms of CPU a second to spend.

Two clocks: `cpu_times` (utime + stime, counted in 10 ms ticks: coarse for processes that each run a few ms a
second) and, with `exact=True`, every thread's time on a CPU from `/proc/<pid>/task/*/schedstat` (ns). Note that
`/proc/<pid>/schedstat` alone is the main thread's, not the process's.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import psutil


def ray_processes() -> dict[int, tuple[str, psutil.Process]]:
    """This process (the benchmark's client) and the local Ray instance it started: its daemons, children of
    this process, named by their binary, and their workers, named by the title Ray gives each (`ray::ProxyActor`)."""
    me = psutil.Process()
    found = {me.pid: ("client (this process)", me)}
    for process in me.children(recursive=True):
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        title = command[0] if command else "?"
        # A worker's title is `ray::Actor.method` while it runs a method: count it under its actor.
        found[process.pid] = (title.split(".")[0] if title.startswith("ray::") else os.path.basename(title), process)
    return found


def cpu_seconds(processes: dict[int, tuple[str, psutil.Process]]) -> Counter[str]:
    spent: Counter[str] = Counter()
    for name, process in processes.values():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # gone meanwhile
        spent[name] += times.user + times.system
    return spent


def on_cpu_seconds(processes: Mapping[int, tuple[str, object]]) -> Counter[str]:
    """Time on a CPU of every thread of each process, by name (a thread that ends meanwhile takes its time with
    it); only the pids and names of `processes` are read."""
    spent: Counter[str] = Counter()
    for pid, (name, _) in processes.items():
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # gone meanwhile
        for thread in threads:
            try:
                with open(f"/proc/{pid}/task/{thread}/schedstat") as stat:
                    spent[name] += int(stat.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                continue
    return spent


@contextmanager
def cpu_spent(exact: bool = False) -> Iterator[dict[str, float]]:
    """The CPU milliseconds each process of `ray_processes` spends inside the block: the dict it gives is filled
    in as the block ends. `exact`: time on a CPU by thread (schedstat) instead of utime + stime ticks."""
    clock = on_cpu_seconds if exact else cpu_seconds
    processes = ray_processes()
    before = clock(processes)
    spent: dict[str, float] = {}
    yield spent
    after = clock(processes)
    spent.update({name: (after[name] - before[name]) * 1000 for name in after})


def per(spent: dict[str, float], count: float) -> dict[str, float]:
    """`spent` per request (`count` requests) or per second (`count` seconds)."""
    return {name: value / count for name, value in spent.items()}
