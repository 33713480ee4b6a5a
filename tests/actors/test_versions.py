"""An App's version and the order of deploys (actors/versions.py), without Ray."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from aomi_runtime.actors.hosts import Hosts
from aomi_runtime.actors.live_set import LiveSet
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.versions import Stamp, Versions, app_version
from aomi_runtime.agent.apps import AppSpec, Limits


def test_a_version_changes_with_what_the_sessions_run_and_only_with_it() -> None:
    spec = AppSpec(name="default", tools=("time_now",))
    same = AppSpec(name="default", tools=("time_now",))
    assert app_version(spec) == app_version(same)
    changed = [
        app_version(AppSpec(name="default", tools=("long_task",))),
        app_version(AppSpec(name="default", tools=("time_now",), system_prompt="Be brief.")),
        app_version(AppSpec(name="default", tools=("time_now",), limits=Limits(max_tool_rounds=2))),
        app_version(spec, "2026-12-06.1"),  # AOMI_VERSION
        app_version(spec, None, SessionPlacement(sessions_per_actor=256)),
        app_version(spec, None, None, {"OPENAI_API_KEY": SecretStr("sk-rotated")}),  # a rotated provider key
    ]
    assert app_version(spec) not in changed and len(set(changed)) == len(changed)
    keys = {"OPENAI_API_KEY": SecretStr("sk-1"), "ANTHROPIC_API_KEY": SecretStr("sk-2")}
    assert app_version(spec, None, None, keys) == app_version(spec, None, None, dict(reversed(keys.items())))


def test_deploys_are_ordered_by_when_they_were_built_and_a_stamp_survives_an_actor_name() -> None:
    older, newer = Stamp(1_800_000_000.5, "bbbbbbbbbbbb"), Stamp(1_800_000_060.25, "aaaaaaaaaaaa")
    assert older < newer  # whatever their versions: a rollback is a newer deploy of an older version
    assert Stamp(0.0, "aaaaaaaaaaaa") < older  # a runtime that deploys nothing never wins
    assert Stamp.parse(newer.token) == newer
    assert Stamp.parse("") is None and Stamp.parse("abc") is None  # an actor named before versions: the oldest


async def test_a_deploy_older_than_the_version_running_changes_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A deploy built on a machine whose clock is behind the last one's looks older: it must not be taken, and an
    operator must be able to see why their deploy changed nothing."""
    spec, placement = AppSpec(name="default"), SessionPlacement()
    running = Stamp(1_800_000_060.0, app_version(spec))
    hosts = Hosts("unused", placement, 1, spec, None, {}, running)
    versions = Versions("default", running, LiveSet(spec, placement, hosts), hosts)
    behind = Stamp(1_800_000_000.0, app_version(spec, "2"))
    with caplog.at_level(logging.WARNING, logger="aomi_runtime.actors.versions"):
        assert not versions.take(spec, {}, behind, placement)
    assert versions.stamp == running and hosts.stamp == running
    assert any(behind.version in r.getMessage() and "built later" in r.getMessage() for r in caplog.records)
