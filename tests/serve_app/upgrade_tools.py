"""The tool of test_upgrade.py in two versions: the same name, `slow`, answering the version that ran it. Each
reports progress, then waits for the test to let it finish (a file lock the test holds), so that turns are mid-turn
while a new version is deployed."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import Any

from aomi_runtime.agent.tools import Tool, ToolContext, tool

PARAMETERS = {"type": "object", "properties": {"lock": {"type": "string"}}}


def _wait_for(lock: str) -> None:
    with Path(lock).open() as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # shared: every waiting tool goes on once the test lets the lock go


def slow_as(version: str) -> Tool:
    @tool("slow", description="Reports progress, waits for the lock `lock` if given, answers its version.",
          parameters=PARAMETERS)  # fmt: skip
    async def slow(args: dict[str, Any], ctx: ToolContext) -> dict[str, str]:
        await ctx.progress({"waiting": True})
        if lock := args.get("lock"):
            await asyncio.to_thread(_wait_for, str(lock))
        return {"version": version}

    return slow


slow_v1 = slow_as("v1")
slow_v2 = slow_as("v2")
