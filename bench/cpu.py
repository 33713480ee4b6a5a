"""CPU time a request costs, by process of the Ray instance (the proxy, the replica, the session actor, ...).

Unlike latency, CPU seconds hardly move with other load on the machine, and on a node that Serve saturates
they are what bounds reads per second: a 2-core node has 2,000 ms of CPU a second to spend.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import psutil

Request = Callable[[], Awaitable[object]]


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


async def cpu_per_request(request: Request, n: int) -> dict[str, float]:
    """`n` requests one after another: the CPU milliseconds each cost, per process (idle work included, as in
    any run; `idle_cpu` tells how much that is)."""
    processes = ray_processes()
    before = cpu_seconds(processes)
    for _ in range(n):
        await request()
    after = cpu_seconds(processes)
    return {name: (after[name] - before[name]) * 1000 / n for name in after}


async def idle_cpu(seconds: float) -> dict[str, float]:
    """CPU milliseconds a second each process spends while no request comes."""
    processes = ray_processes()
    before, started = cpu_seconds(processes), time.perf_counter()
    await asyncio.sleep(seconds)
    after, elapsed = cpu_seconds(processes), time.perf_counter() - started
    return {name: (after[name] - before[name]) * 1000 / elapsed for name in after}
