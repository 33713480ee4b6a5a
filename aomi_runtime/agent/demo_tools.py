"""The demo tools of the embedded default App: a quick sync one, a slow async one, and one that fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from .tools import Tool, ToolContext, tool

LONG_TASK_PAUSE = 0.1
MAX_LONG_TASK_STEPS = 1000


@tool(description="The current date and time, in UTC, as ISO-8601.")
def time_now(args: dict[str, Any], ctx: ToolContext) -> str:
    return datetime.now(UTC).isoformat()


@tool(
    description="A slow task: reports progress `steps` times, a short pause apart, then completes.",
    parameters={
        "type": "object",
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "maximum": MAX_LONG_TASK_STEPS, "default": 3},
            "pause": {"type": "number", "minimum": 0, "maximum": 10, "default": LONG_TASK_PAUSE},
        },
    },
)
async def long_task(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    steps = max(1, min(int(args.get("steps", 3)), MAX_LONG_TASK_STEPS))
    pause = max(0.0, min(float(args.get("pause", LONG_TASK_PAUSE)), 10.0))
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        await ctx.progress({"step": step, "of": steps})
    return {"steps": steps, "status": "done"}


@tool(description="Always raises, so the model sees a tool error.")
def always_fails(args: dict[str, Any], ctx: ToolContext) -> Any:
    raise RuntimeError("always_fails failed, as it always does")


DEMO_TOOLS: list[Tool] = [time_now, long_task, always_fails]
