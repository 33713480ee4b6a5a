"""Helpers the tests share: building the default App, and waiting for a condition without fixed sleeps."""

from __future__ import annotations

import asyncio
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


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
