"""The demo tools of the embedded default App: a quick sync one, a slow async one, one that fails, two that ask
the user's wallet, and one that runs in the background."""

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


@tool(
    description="Ask the user's wallet to send `value` wei of ETH to `to`; the user confirms or rejects it.",
    parameters={
        "type": "object",
        "properties": {
            "to": {"type": "string", "description": "The recipient's address."},
            "value": {"type": ["string", "integer"], "description": "The amount in wei."},
            "chain_id": {"type": "integer"},
        },
        "required": ["to", "value"],
    },
)
async def send_eth(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return await ctx.request_transaction(
        to=str(args.get("to", "")), value=args.get("value", 0), chain_id=args.get("chain_id"), label="Send ETH"
    )


@tool(
    description="Ask the user's wallet to sign EIP-712 `typed_data`; `description` says what for.",
    parameters={
        "type": "object",
        "properties": {"typed_data": {"type": "object"}, "description": {"type": "string"}},
        "required": ["typed_data"],
    },
)
async def sign_typed_data(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    typed_data = args.get("typed_data")
    return await ctx.request_signature(
        typed_data if isinstance(typed_data, dict) else {}, str(args.get("description", ""))
    )


@tool(
    description="A slow task run in the background: answers at once, reports progress `steps` times, then ends "
    "(with an error if `fail`); its result reaches the model at the next turn.",
    parameters={
        "type": "object",
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "maximum": MAX_LONG_TASK_STEPS, "default": 3},
            "pause": {"type": "number", "minimum": 0, "maximum": 10, "default": LONG_TASK_PAUSE},
            "fail": {"type": "boolean", "default": False},
        },
    },
    background=True,
)
async def background_task(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    result = await long_task.run(args, ctx)
    if args.get("fail"):
        raise RuntimeError("background_task failed, as asked")
    return dict(result)


DEMO_TOOLS: list[Tool] = [time_now, long_task, always_fails, send_eth, sign_typed_data, background_task]
