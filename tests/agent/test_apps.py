"""An App's spec: what it resolves (its tools) and what it carries to other processes (names, not tools)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from aomi_runtime.agent.apps import AppSpec
from aomi_runtime.agent.errors import InvalidInput

# A tool whose module holds what no pickle may copy: a lock (as a client or a pool would be).
LOCKED_TOOLS = """
import threading

from aomi_runtime import ToolContext, tool

LOCK = threading.Lock()


@tool()
def guarded(args: dict, ctx: ToolContext) -> int:
    with LOCK:
        return 1
"""


def test_a_spec_whose_tools_hold_a_lock_still_pickles_once_they_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "locked_tools.py").write_text(LOCKED_TOOLS)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = AppSpec(name="locked", tools=("time_now", "locked_tools:guarded"))
    assert spec.tool_registry.names == ["time_now", "guarded"]
    back = pickle.loads(pickle.dumps(spec))  # as it travels to Serve and the App's actors
    assert back == spec
    assert back.tool_registry.get("guarded") is spec.tool_registry.get("guarded")  # resolved once a process


def test_a_tool_not_found_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="no_such_tool"):
        AppSpec(name="broken", tools=("no_such_tool",)).tool_registry  # noqa: B018
