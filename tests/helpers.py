"""Helpers the tests share: building the default App, waiting for a condition without fixed sleeps, finding
processes left behind."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aomi_runtime.agent.apps import DEFAULT_APP_SPEC, App, AppSpec
from aomi_runtime.agent.demo_tools import DEMO_TOOLS
from aomi_runtime.agent.tools import ToolRegistry
from aomi_runtime.backends.models import ScriptedModel

T = TypeVar("T")


def scripted_app(spec: AppSpec = DEFAULT_APP_SPEC, *, count_pause: float = 0.02) -> App:
    providers = {m.slug: ScriptedModel(count_pause=count_pause) for m in spec.models}
    return App(spec=spec, providers=providers, tools=ToolRegistry.from_names(spec.tools, DEMO_TOOLS))


async def eventually(check: Callable[[], Awaitable[T] | T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `check` (sync or async) until it returns something truthy; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


def holders(namespace: str, session_id: str) -> list[object]:
    """The session actors of a namespace that host this session: there must never be more than one."""
    import ray

    from aomi_runtime.actors.directory import WORKER_PREFIX, named_actors

    workers = named_actors(namespace, WORKER_PREFIX)
    held = ray.get([w.held.remote() for w in workers])
    return [w for w, hosted in zip(workers, held, strict=True) if session_id in hosted]


def processes_using(path: str) -> list[str]:
    """`pgrep -af` lines of the processes whose command lines name `path` (a Ray temp dir: its processes')."""
    found = subprocess.run(["pgrep", "-af", path], capture_output=True, text=True).stdout.splitlines()
    return [line for line in found if "pgrep" not in line]
