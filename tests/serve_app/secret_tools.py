"""A tool that reads a client secret, for test_secrets.py: it answers a digest of the value, never the value, so
that the test can tell which secret it read while the secret stays out of every snapshot and event."""

from __future__ import annotations

import hashlib
from typing import Any

from aomi_runtime.agent.tools import ToolContext, tool


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@tool(
    description="A digest of the client secret named `name`.",
    parameters={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
)
async def secret_digest(args: dict[str, Any], ctx: ToolContext) -> dict[str, str]:
    return {"digest": digest(await ctx.secret(str(args["name"])))}
