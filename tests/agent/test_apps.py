"""An App's spec: what it resolves (its tools) and what it carries to other processes (names, not tools)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from aomi_runtime.agent.apps import AppSpec, ModelSpec
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


@pytest.mark.parametrize(
    ("provider", "base_url", "client_keys", "expected"),
    [
        ("openai", None, None, "openai"),
        ("anthropic", None, None, "anthropic"),
        ("openai", "https://openrouter.ai/api/v1", None, "openrouter"),
        ("openai", "http://localhost:8000/v1", None, None),  # an operator's server: never a client's key
        ("anthropic", "https://proxy.example", None, None),
        ("openai", "http://localhost:8000/v1", "openai", "openai"),  # unless the App says so
        ("openai", None, "none", None),
        ("scripted", None, None, None),
    ],
)
def test_a_clients_own_key_goes_only_where_the_model_says(
    provider: str, base_url: str | None, client_keys: str | None, expected: str | None
) -> None:
    spec = ModelSpec.model_validate(
        {"label": "m", "slug": "m", "provider": provider, "base_url": base_url, "client_keys": client_keys}
    )
    assert spec.client_key_provider == expected
