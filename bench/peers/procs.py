"""A server's processes, read from /proc: the tree under its first process, CPU time, memory, core affinity,
which of them listens on a port, and which native libraries each has loaded."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from bench.cpu import on_cpu_seconds

LISTEN = "0A"  # a socket's state in /proc/net/tcp


def tree(root: int) -> list[int]:
    """`root` and every process below it (children of children included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


class CpuMeter:
    """The CPU seconds a server's whole process tree spends between `start` and `seconds`: every thread's time on
    a CPU (`schedstat`, in ns: a phase of a few hundred sub-millisecond requests is below what 10 ms ticks
    resolve). A process or thread started meanwhile counts from zero; one gone meanwhile takes its time away."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.before: Counter[str] = Counter()

    def _spent(self) -> Counter[str]:
        return on_cpu_seconds({pid: (str(pid), None) for pid in tree(self.root)})

    def start(self) -> None:
        self.before = self._spent()

    def seconds(self) -> float:
        after = self._spent()
        return sum(after[pid] - self.before[pid] for pid in after)


def pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def off_core(pids: list[int], core: int) -> list[int]:
    """The processes of `pids` allowed on any core but `core`."""
    wrong = []
    for pid in pids:
        try:
            if os.sched_getaffinity(pid) != {core}:
                wrong.append(pid)
        except OSError:
            continue
    return wrong


def title(pid: int) -> str:
    """What a process calls itself: a Ray worker's title (`ray::ProxyActor`), else its program's name."""
    try:
        first = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "?"
    return first.split(" ")[0] if first.startswith("ray::") else os.path.basename(first)


def listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return inodes


def listener(pids: list[int], port: int) -> str | None:
    """The title of the process of `pids` that listens on `port` (which of Serve's processes takes a request
    first: `ray::ProxyActor`, a `ray::ServeReplica:...`, `haproxy`), or None if none of them does."""
    sockets = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                    return title(pid)
            except OSError:
                continue
    return None


def ingress_path(listening: str | None) -> str:
    """The name of the path a request takes into Serve, from the process that listens on the URL's port."""
    if listening is None:
        return "unknown"
    if listening == "ray::ProxyActor":
        return "proxy"
    if listening.startswith("ray::ServeReplica"):
        return "direct"
    return listening  # haproxy, uvicorn's python, ...


def loaded(pid: int, libraries: tuple[str, ...]) -> set[str]:
    """Which of `libraries` (parts of a shared object's path, e.g. `uvloop/loop`) process `pid` has mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {library for library in libraries if library in maps}
