"""The actors under faults: a session actor or a directory killed, many callers racing for one session."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.runtime import Runtime, app_namespace
from aomi_runtime.agent.apps import DEFAULT_APP_SPEC
from aomi_runtime.agent.errors import AppMismatch, SessionNotFound
from aomi_runtime.agent.session import CUT_SHORT
from tests.helpers import eventually

NAMESPACE = "aomi-actors-test"


@pytest.fixture
async def runtime(ray_instance: None, tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime([DEFAULT_APP_SPEC], f"sqlite:///{tmp_path / 'actors.db'}", NAMESPACE)
    yield rt
    await rt.stop()


def session_actors(session_id: str) -> list[dict[str, str]]:
    return [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == f"session:{session_id}"]


async def state(runtime: Runtime, session_id: str) -> dict[str, Any]:
    return dict(json.loads(await runtime.call(session_id, "state", None)))


async def chat(runtime: Runtime, session_id: str, text: str) -> dict[str, Any]:
    return dict(json.loads(await runtime.chat(session_id, text, app="default", user_state=None, public_key=None)))


async def test_a_session_actor_killed_mid_turn_comes_back_with_the_turn_closed(runtime: Runtime) -> None:
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    await eventually(lambda: _idle(runtime, s))
    await chat(runtime, s, "count to 1000")
    actor = ray.get_actor(f"session:{s}", namespace=app_namespace(NAMESPACE, "default"))
    ray.kill(actor, no_restart=True)

    snap = await state(runtime, s)  # the dead handle is noticed, and the session rebuilt from the database
    assert not snap["is_processing"]
    assert [(m["sender"], m["content"]) for m in snap["messages"]] == [
        ("user", "hello"),
        ("agent", 'You said: "hello"'),
        ("user", "count to 1000"),
        ("agent", ""),
    ]
    assert not any(m["is_streaming"] for m in snap["messages"])
    assert snap["system_events"] == [{"SystemError": CUT_SHORT}]
    await chat(runtime, s, "are you back?")
    done = await eventually(lambda: _idle(runtime, s))
    assert done["messages"][-1]["content"] == 'You said: "are you back?"'
    assert len(session_actors(s)) == 1


async def _idle(runtime: Runtime, s: str) -> dict[str, Any] | None:
    snap = await state(runtime, s)
    return None if snap["is_processing"] else snap


async def test_a_killed_directory_restarts_and_finds_the_live_sessions_again(runtime: Runtime) -> None:
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    before = await eventually(lambda: _idle(runtime, s))
    actor = ray.get_actor(f"session:{s}", namespace=app_namespace(NAMESPACE, "default"))
    ray.kill(runtime.app("default").directory, no_restart=False)

    fresh = Runtime([DEFAULT_APP_SPEC], "unused://", NAMESPACE)  # a new replica: no cached handles
    assert await state(fresh, s) == before
    assert session_actors(s) == [{"name": f"session:{s}", "namespace": app_namespace(NAMESPACE, "default")}]
    assert ray.get_actor(f"session:{s}", namespace=app_namespace(NAMESPACE, "default")) == actor


async def test_callers_racing_for_a_new_session_from_many_replicas_make_one_actor(runtime: Runtime) -> None:
    s = str(uuid.uuid4())
    replicas = [Runtime([DEFAULT_APP_SPEC], "unused://", NAMESPACE) for _ in range(5)]
    infos = await asyncio.gather(*(r.call(s, "info", app="default", create=True) for r in replicas for _ in range(20)))
    assert {i.session_id for i in infos} == {s}
    assert len(session_actors(s)) == 1


async def test_unknown_sessions_and_other_apps_are_refused(runtime: Runtime) -> None:
    with pytest.raises(SessionNotFound):
        await runtime.call(str(uuid.uuid4()), "state", None)
    s = str(uuid.uuid4())
    await chat(runtime, s, "hello")
    with pytest.raises(AppMismatch):
        await runtime.call(s, "state", None, app="other")
