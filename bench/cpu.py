"""CPU time a request costs, by process of the Ray instance (the proxy, the replica, the session actor, ...).

Unlike latency, CPU seconds hardly move with other load on the machine, and on a node that Serve saturates
they are what bounds reads per second: a 2-core node has 2,000 ms of CPU a second to spend.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
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


@contextmanager
def cpu_spent() -> Iterator[dict[str, float]]:
    """The CPU milliseconds each process of `ray_processes` spends inside the block: the dict it gives is filled
    in as the block ends."""
    processes = ray_processes()
    before = cpu_seconds(processes)
    spent: dict[str, float] = {}
    yield spent
    after = cpu_seconds(processes)
    spent.update({name: (after[name] - before[name]) * 1000 for name in after})


def per(spent: dict[str, float], count: float) -> dict[str, float]:
    """`spent` per request (`count` requests) or per second (`count` seconds)."""
    return {name: value / count for name, value in spent.items()}
