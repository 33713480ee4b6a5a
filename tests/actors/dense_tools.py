"""Sync tools that misbehave, for the tests of sessions packed in one actor (test_dense.py): an App names them
by import path, so each session actor imports them itself."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import Any

from aomi_runtime.agent.tools import ToolContext, tool


@tool(description="Burns CPU in Python for `seconds`; returns when it started and ended (wall clock).")
def spin(args: dict[str, Any], ctx: ToolContext) -> dict[str, float]:
    started, began = time.time(), time.monotonic()
    n = 0
    while time.monotonic() - began < float(args["seconds"]):
        n += 1  # holds the GIL but for the interpreter's switches, as CPU-bound Python does
    return {"started": started, "ended": time.time()}


@tool(description="Blocks until it gets the file lock at `lock`, which the test holds; marks `lock`.waiting first.")
def hang(args: dict[str, Any], ctx: ToolContext) -> str:
    lock = Path(args["lock"])
    lock.with_suffix(".waiting").touch()
    with lock.open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
    return "released"
