"""The App configuration file: its smallest form stands, and each mistake names the file, App and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aomi_runtime.agent.errors import ConfigError
from aomi_runtime.agent.tools import ToolContext, tool
from aomi_runtime.serve_app.config import load_apps

SMALLEST = """
apps:
  - name: default
    public: true
  - name: research
    public: false
    tools: [time_now, long_task]
"""


def write(tmp_path: Path, text: str, name: str = "apps.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_smallest_form_is_valid(tmp_path: Path) -> None:
    default, research = load_apps(write(tmp_path, SMALLEST), {})
    assert (default.name, default.public, default.tools) == (
        "default",
        True,
        ("time_now", "long_task", "always_fails", "send_eth", "sign_typed_data", "background_task"),
    )
    assert (research.name, research.public, research.tools) == ("research", False, ("time_now", "long_task"))
    assert [m.provider for m in research.models] == ["scripted"]


def test_a_full_app_in_toml(tmp_path: Path) -> None:
    text = """
[[apps]]
name = "research"
public = false
tools = ["time_now", "tests.serve_app.test_config:echo"]
system_prompt = "Be brief."
default_model = "gpt"
limits = { max_message_bytes = 1000, max_live_sessions = 5, idle_seconds = 60, retention_days = 7 }

[[apps.models]]
label = "GPT"
slug = "gpt"
provider = "openai"
model = "gpt-4o-mini"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "K"

[[apps.models]]
label = "Claude"
slug = "claude"
provider = "anthropic"
model = "claude-x"
api_key_env = "K"
timeout_seconds = 5
"""
    (spec,) = load_apps(write(tmp_path, text, "apps.toml"), {"K": "secret"})
    assert spec.model(None) is not None and spec.model(None).slug == "gpt"  # type: ignore[union-attr]
    assert spec.model("Claude") is not None and spec.limits.retention_days == 7


@tool(description="Echo the text back.", parameters={"type": "object", "properties": {"text": {"type": "string"}}})
def echo(args: dict[str, Any], ctx: ToolContext) -> str:
    return str(args.get("text", ""))


def shout() -> None:
    """Not a Tool: used to check the error for an import path that names something else."""


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        ("apps: []", {}, ["top-level 'apps' list"]),
        ("apps: [{name: a}]\nother: 1", {}, ["unknown top-level field"]),
        ("apps: [{name: a, public: maybe}]", {}, ["App 'a'", "field 'public'"]),
        ("apps: [{name: a, colour: red}]", {}, ["App 'a'", "field 'colour'"]),
        ("apps: [{public: true}]", {}, ["App #1", "field 'name'"]),
        ("apps: [{name: 'Bad Name'}]", {}, ["field 'name'"]),
        ("apps: [{name: a}, {name: a}]", {}, ["App 'a'", "already named"]),
        ("apps: [{name: a, tools: [nope]}]", {}, ["App 'a'", "field 'tools'", "nope"]),
        ("apps: [{name: a, tools: ['tests.serve_app.test_config:shout']}]", {}, ["field 'tools'", "not a Tool"]),
        ("apps: [{name: a, models: [{label: x, slug: x, provider: magic}]}]", {}, ["field 'models.0.provider'"]),
        (
            "apps: [{name: a, models: [{label: x, slug: x, api_key_env: NOPE}]}]",
            {},
            ["field 'models.0.api_key_env'", "NOPE"],
        ),
        ("apps: [{name: a, default_model: z}]", {}, ["App 'a'", "default_model 'z'"]),
        ("apps: [{name: a, limits: {max_message_bytes: 0}}]", {}, ["field 'limits.max_message_bytes'"]),
        ("apps: [{name: a\n", {}, ["not valid YAML"]),
    ],
)
def test_a_wrong_file_names_the_file_the_app_and_the_field(
    tmp_path: Path, text: str, env: dict[str, str], words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_apps(path, env)
    message = str(caught.value)
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_apps(tmp_path / "absent.yaml", {})
