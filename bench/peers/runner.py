"""One server's run: started, waited for, put through the phases, measured (processes, memory, affinity), stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from urllib.parse import urlsplit

import httpx

from .apis import Api
from .phases import Row, workload
from .procs import CpuMeter, ingress_path, listener, loaded, off_core, pss_bytes, title, tree
from .servers import CLIENT_CORE, SERVER_CORE, Running, Server, started, wait_announced

SERVE_PROCESSES = ("ray::ProxyActor", "ray::ServeReplica")
# httptools' parser is imported by uvicorn's `http="auto"` only when it picks it. (uvloop is imported by every Ray
# worker whether it installs it as the loop or not: its mapping would tell nothing.)
LIBRARIES = ("httptools/parser",)


async def wait_ready(running: Running, api: Api, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"exited with {running.process.returncode} before answering:\n{running.tail()}")
        try:
            if (await api.http.get(api.ready_path, timeout=2)).is_success:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {timeout:.0f} s:\n{running.tail()}")


async def measure(server: Server, running: Running, pinned: bool, args: argparse.Namespace, row: Row) -> None:
    if server.announces:
        await asyncio.to_thread(wait_announced, running, args.start_timeout)
    limits = httpx.Limits(max_connections=2 * args.clients, max_keepalive_connections=2 * args.clients)
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in running.urls]
    apis = [server.api(http, args.poll_interval) for http in clients]
    try:
        await wait_ready(running, apis[0], args.start_timeout)
        row.urls = len(running.urls)
        row.path = ingress_path(listener(tree(running.process.pid), urlsplit(running.urls[0]).port or 80))
        meter = CpuMeter(running.process.pid)
        try:
            await asyncio.wait_for(workload(apis, meter, args, row, running.database), timeout=args.budget)
        except TimeoutError:
            budget = f"{args.budget:.0f} s" if args.budget < 120 else f"{args.budget / 60:g} min"
            row.failed = f"did not finish the workload in {budget} (at: {row.phase})"
        if server.expects and not any(running.workdir.glob(server.expects)):
            row.notes.append(f"no {server.expects} in its directory: it may not have run as labelled")
        pids = tree(running.process.pid)
        row.processes, row.pss = len(pids), pss_bytes(pids)
        for pid in pids:
            if (name := title(pid)).startswith(SERVE_PROCESSES):
                row.libraries.setdefault(name, set()).update(loaded(pid, LIBRARIES))
        row.off_core = len(off_core(pids, SERVER_CORE)) if pinned else 0
    finally:
        for api in apis:
            await api.close()
        for http in clients:
            await http.aclose()


def run_one(server: Server, mode: str, args: argparse.Namespace, env: dict[str, str]) -> Row:
    pinned = mode == "pinned"
    os.sched_setaffinity(0, {CLIENT_CORE} if pinned else set(range(os.cpu_count() or 1)))
    row = Row(server.key, server.label, mode, os.getloadavg()[0], floor=server.floor, reads_only=server.reads_only)
    try:
        with started(server, pinned, env) as running:
            asyncio.run(measure(server, running, pinned, args, row))
    except Exception as exc:
        said = str(exc).strip() or type(exc).__name__
        print(f"  {server.key} ({mode}): {said}", file=sys.stderr, flush=True)  # with the server's last log lines
        row.failed = f"failed ({row.phase}): {said.splitlines()[0].rstrip(':')}"
    else:
        print(f"  {server.key} ({mode}): {row.failed or 'done'}", file=sys.stderr, flush=True)
    return row
