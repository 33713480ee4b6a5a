"""Apps over HTTP: keys, isolation, each App's own tools and models, providers failing, control routes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.serve_app.settings import Settings
from tests.conftest import TEST_NAMESPACE
from tests.fake_provider import FakeProvider
from tests.helpers import eventually
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.sse_client import read_until, reading


async def finished(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    async def state() -> dict[str, Any] | None:
        body = (await client.get("/api/state", headers=h(session_id))).json()
        return None if body["is_processing"] else dict(body)

    return await eventually(state, timeout=20, interval=0.05)


async def test_a_keyed_app_needs_its_own_key(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    params = {"message": "hello", "app": "research"}
    r = await client.post("/api/chat", params=params, headers=h(sid()))
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"]
    for wrong in ("aomi_000000000000_nope", "not-even-shaped-like-a-key", keys["billing"]):
        r = await client.post("/api/chat", params=params, headers={**h(sid()), **k(wrong)})
        assert r.status_code == 403 and "research" in r.json()["error"], wrong
    for header in ("X-API-Key", "AOMI-APP-KEY"):
        r = await client.post("/api/chat", params=params, headers={**h(sid()), **k(keys["research"], header)})
        assert r.status_code == 200, r.text
    # a public App takes requests with or without a key
    assert (await client.post("/api/chat", params={"message": "hi"}, headers=h(sid()))).status_code == 200


async def test_a_keyed_apps_session_takes_turns_only_with_its_key_and_is_listed_only_with_it(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    # What Aomi's client sends a key with (chat, control) needs the App's; the rest takes the id (test_client_flows).
    s, owner = sid(), f"0x{uuid.uuid4().hex}"
    research = k(keys["research"])
    r = await client.post("/api/chat", params={"message": "secret plans", "app": "research", "public_key": owner},
                          headers={**h(s), **research})  # fmt: skip
    assert r.status_code == 200
    await finished(client, s)

    for other in ({}, k(keys["billing"])):
        expected = 401 if not other else 403
        refused = [
            client.post("/api/chat", params={"message": "mine now"}, headers={**h(s), **other}),
            client.post("/api/control/model", params={"rig": "scripted"}, headers={**h(s), **other}),
        ]
        for response in await asyncio.gather(*refused):
            assert response.status_code == expected, (response.request.url, response.text)
    # naming another App on it is a conflict, whatever the key
    r = await client.post("/api/chat", params={"message": "mine now", "app": "default"}, headers=h(s))
    assert r.status_code == 409
    r = await client.post(
        "/api/control/model", params={"rig": "scripted", "app": "billing"}, headers={**h(s), **k(keys["billing"])}
    )
    assert r.status_code == 409
    # listed only with the App's key
    assert (await client.get("/api/sessions", params={"public_key": owner})).json() == []
    listed = await client.get("/api/sessions", params={"public_key": owner}, headers=k(keys["billing"]))
    assert listed.json() == []
    listed = await client.get("/api/sessions", params={"public_key": owner}, headers=research)
    assert [x["session_id"] for x in listed.json()] == [s]
    # no refused turn was taken
    snap = (await client.get("/api/state", headers=h(s))).json()
    assert [m["content"] for m in snap["messages"] if m["sender"] == "user"] == ["secret plans"]


async def test_control_routes_list_apps_and_models_and_switch_a_sessions_model(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    assert (await client.get("/api/control/apps")).json() == ["default", "helpdesk"]
    assert (await client.get("/api/control/apps", headers=k(keys["research"]))).json() == [
        "default",
        "helpdesk",
        "research",
    ]
    assert (await client.get("/api/control/models")).json() == ["Scripted (offline)"]
    assert (await client.get("/api/control/models", params={"app": "helpdesk"})).json() == ["Fake GPT", "Fake Claude"]
    assert (await client.get("/api/control/models", params={"app": "research"})).status_code == 401
    research = k(keys["research"])
    assert (await client.get("/api/control/models", params={"app": "research"}, headers=research)).json() == [
        "Fake GPT",
        "Scripted",
    ]

    s = sid()
    await client.post("/api/chat", params={"message": "first", "app": "research"}, headers={**h(s), **research})
    assert (await finished(client, s))["messages"][-1]["content"] == "Echo: first"
    r = await client.post(
        "/api/control/model", params={"rig": "Scripted", "app": "research"}, headers={**h(s), **research}
    )
    assert r.json() == {"success": True, "rig": "scripted", "baml": None, "created": False}
    await client.post("/api/chat", params={"message": "second", "app": "research"}, headers={**h(s), **research})
    assert (await finished(client, s))["messages"][-1]["content"] == 'You said: "second"'

    bad = await client.post(
        "/api/control/model", params={"rig": "gpt-9", "app": "research"}, headers={**h(s), **research}
    )
    assert bad.status_code == 400 and "gpt-9" in bad.json()["error"]
    assert (
        await client.post("/api/control/model", params={"rig": "scripted", "app": "research"}, headers=h(s))
    ).status_code == 401


async def test_each_apps_model_sees_only_its_own_tools(
    client: httpx.AsyncClient, keys: dict[str, str], fake_provider: tuple[FakeProvider, str]
) -> None:
    fake = fake_provider[0]
    research, helpdesk, default = sid(), sid(), sid()
    await client.post(
        "/api/chat", params={"message": "hi", "app": "research"}, headers={**h(research), **k(keys["research"])}
    )
    await client.post("/api/chat", params={"message": "hi", "app": "helpdesk"}, headers=h(helpdesk))
    await client.post("/api/chat", params={"message": "/tools"}, headers=h(default))
    for s in (research, helpdesk, default):
        await finished(client, s)

    def offered(model: str) -> set[str]:
        turns = [r for r in fake.requests_for(model) if r.get("tools")]
        assert turns, f"no turn reached {model}"
        return {t["function"]["name"] for r in turns for t in r["tools"]}

    assert offered("fake-gpt-research") == {"time_now", "long_task"}
    assert offered("fake-gpt-helpdesk") == {"always_fails"}
    last = (await client.get("/api/state", headers=h(default))).json()["messages"][-1]["content"]
    assert last == "Tools: time_now, long_task, always_fails, send_eth, sign_typed_data, background_task"


async def test_a_remote_model_calls_a_tool_and_answers_about_it(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    s = sid()
    message = 'call long_task {"steps": 2, "pause": 0.01}'
    await client.post(
        "/api/chat", params={"message": message, "app": "research"}, headers={**h(s), **k(keys["research"])}
    )
    stream = await read_until(client, s, "processing_done")
    assert stream.types.count("tool_update") == 2 and "tool_complete" in stream.types
    snap = await finished(client, s)
    assert [m["tool_result"] for m in snap["messages"] if m["tool_result"]] == [
        ["long_task", '{"steps": 2, "status": "done"}']
    ]
    assert snap["messages"][-1]["content"] == 'Tool said: {"steps": 2, "status": "done"}'


@pytest.mark.parametrize("rig", ["fake-gpt", "fake-claude"])
@pytest.mark.parametrize(("message", "error"), [("fail", "answered 500"), ("hang", "did not answer within 1.5 s")])
async def test_a_provider_outage_ends_the_turn_with_a_readable_error(
    client: httpx.AsyncClient, rig: str, message: str, error: str
) -> None:
    s = sid()
    await client.post("/api/control/model", params={"rig": rig, "app": "helpdesk"}, headers=h(s))
    await client.post("/api/chat", params={"message": message, "app": "helpdesk"}, headers=h(s))
    snap = await finished(client, s)
    assert not snap["is_processing"] and not any(m["is_streaming"] for m in snap["messages"])
    (event,) = snap["system_events"]
    assert error in event["SystemError"] and "Fake" in event["SystemError"]
    assert "sk-fake" not in json.dumps(snap)
    # the session goes on
    await client.post("/api/chat", params={"message": "better now?", "app": "helpdesk"}, headers=h(s))
    assert (await finished(client, s))["messages"][-1]["content"] == "Echo: better now?"


async def test_concurrent_async_tools_report_progress_to_their_own_sessions_only(client: httpx.AsyncClient) -> None:
    sessions = [sid() for _ in range(8)]
    readers = await asyncio.gather(*(reading(client, s, "processing_done") for s in sessions))  # streams open
    await asyncio.gather(
        *(
            client.post("/api/chat", params={"message": '/tool long_task {"steps": 4, "pause": 0.05}'}, headers=h(s))
            for s in sessions
        )
    )
    streams = await asyncio.gather(*readers)
    tool_ids: set[str] = set()
    for s, stream in zip(sessions, streams, strict=True):
        updates = [data for _, data in stream.frames if data["type"] == "tool_update"]
        assert [u["result"] for u in updates] == [{"step": i, "of": 4} for i in range(1, 5)]
        assert {u["session_id"] for _, u in stream.frames} == {s}
        (tool_id,) = {u["id"] for u in updates}
        tool_ids.add(tool_id)
    assert len(tool_ids) == len(sessions)


async def test_keys_from_the_cli_work_and_stop_working_when_revoked(
    client: httpx.AsyncClient, runtime_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text("apps:\n  - name: research\n    public: false\n")
    base = [sys.executable, "-m", "aomi_runtime.serve_app.cli", "keys"]
    where = ["--database-url", runtime_settings.database_url, "--config", str(config)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args, *where], capture_output=True, text=True, timeout=60)

    made = cli("create", "--app", "research", "--label", "cli test")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("aomi_") and "only time the key is shown" in made.stderr
    refused = cli("create", "--app", "nowhere")
    assert refused.returncode == 2 and "no App 'nowhere'" in refused.stderr

    listed = cli("list", "--app", "research")
    key_id = key.split("_")[1]
    line = next(x for x in listed.stdout.splitlines() if x.startswith(key_id))
    assert "active" in line and "cli test" in line and key.split("_", 2)[2] not in listed.stdout

    s = sid()
    r = await client.post("/api/chat", params={"message": "hi", "app": "research"}, headers={**h(s), **k(key)})
    assert r.status_code == 200
    assert cli("revoke", key_id).returncode == 0
    assert "revoked" in cli("list").stdout

    async def refused_now() -> bool:
        r = await client.post("/api/chat", params={"message": "again"}, headers={**h(s), **k(key)})
        return r.status_code == 403

    await eventually(refused_now, timeout=10, interval=0.2)  # the runtime's key cache is 0.5 s here


async def test_no_key_or_secret_reaches_the_snapshot_or_events(
    client: httpx.AsyncClient, keys: dict[str, str], runtime_settings: Settings
) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "hi", "app": "research"}, headers={**h(s), **k(keys["research"])})
    await finished(client, s)
    everything = (await client.get("/api/state", headers=h(s))).text + (
        await client.get("/api/events", headers=h(s))
    ).text
    assert keys["research"] not in everything and "sk-fake-provider-key" not in everything


async def test_who_may_is_checked_before_what_was_sent(client: httpx.AsyncClient) -> None:
    # docs/api.md's order of checks: a request the caller may not make is refused as such, whatever else is wrong.
    unknown = sid()
    no_key = await client.post("/api/chat", params={"app": "research"}, headers=h(sid()))  # no message either
    assert no_key.status_code == 401 and "X-API-Key" in no_key.json()["error"]
    no_key = await client.post("/api/system", params={"app": "research"}, headers=h(unknown))  # it would make it
    assert no_key.status_code == 401 and "X-API-Key" in no_key.json()["error"]
    no_title = await client.patch(f"/api/sessions/{unknown}", json={})
    assert no_title.status_code == 404
    no_rig = await client.post("/api/control/model", params={"app": "billing"}, headers=h(sid()))
    assert no_rig.status_code == 401
    # once the caller may, what was sent is checked
    r = await client.post("/api/chat", headers=h(sid()))
    assert r.status_code == 400 and "message is missing" in r.json()["error"]


async def deleted_behind_the_cache(client: httpx.AsyncClient, research: dict[str, str]) -> str:
    """A research session this replica has found (its handle cached), then deleted through the directory actor, as
    the retention sweep or another replica's DELETE does: the replica's cache still names research as its App."""
    s = sid()
    r = await client.post("/api/chat", params={"message": "hi", "app": "research"}, headers={**h(s), **research})
    assert r.status_code == 200, r.text
    await finished(client, s)
    directory = ray.get_actor("directory", namespace=app_namespace(TEST_NAMESPACE, "research"))
    assert await directory.delete.remote(s)
    assert (await client.get(f"/api/sessions/{s}")).status_code == 404
    return s


async def test_a_session_gone_behind_the_cache_is_made_again_only_as_a_new_one(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    research = k(keys["research"])
    # Keyless routes that make a session found no key to check for a session that exists: gone by their call,
    # it is a new session, which a keyed App makes only with its key.
    s = await deleted_behind_the_cache(client, research)
    r = await client.post("/api/system", params={"message": "hello", "app": "research"}, headers=h(s))
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"], r.text
    assert (await client.get(f"/api/sessions/{s}")).status_code == 404  # nothing made
    s = await deleted_behind_the_cache(client, research)
    r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers=h(s))
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"], r.text
    assert (await client.get(f"/api/sessions/{s}")).status_code == 404
    # Naming no App, as the widget does, makes it new in `default`, never in research without its key.
    for path, params, body in (("/api/system", {"message": "hello"}, None), ("/api/sessions", {}, {})):
        s = await deleted_behind_the_cache(client, research)
        r = await client.post(path, params=params, json=body, headers=h(s))
        assert r.status_code == 200, r.text
        r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers={**h(s), **research})
        assert r.status_code == 409 and "another App" in r.json()["error"], r.text
    # With the key, it is made again in research.
    s = await deleted_behind_the_cache(client, research)
    r = await client.post("/api/system", params={"message": "hello", "app": "research"}, headers={**h(s), **research})
    assert r.status_code == 200, r.text
    assert (await client.post("/api/chat", params={"message": "hi"}, headers={**h(s), **research})).status_code == 200


async def test_a_keyed_apps_provider_keys_need_its_key(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    # The control routes take the key, as Aomi's client sends it there: a session's id alone must not set the key
    # its client's turns call the provider with (nor read or delete its keys).
    s, research, mine = sid(), k(keys["research"]), str(uuid.uuid4())
    r = await client.post("/api/chat", params={"message": "hi", "app": "research", "client_id": mine},
                          headers={**h(s), **research})  # fmt: skip
    assert r.status_code == 200, r.text
    await finished(client, s)
    path, body = "/api/control/provider-keys", {"provider": "openai", "api_key": "sk-not-the-clients"}
    for wrong, status in (({}, 401), (k(keys["billing"]), 403)):
        assert (await client.post(path, json=body, headers={**h(s), **wrong})).status_code == status
        assert (await client.get(path, headers={**h(s), **wrong})).status_code == status
        assert (await client.delete(f"{path}/openai", headers={**h(s), **wrong})).status_code == status
    assert (await client.get(path, headers={**h(s), **research})).json() == {"provider_keys": []}  # none was set
    r = await client.post(path, json=body, headers={**h(s), **research})
    assert r.status_code == 200 and r.json()["key"]["provider"] == "openai", r.text
    assert (await client.delete(f"{path}/openai", headers={**h(s), **research})).json() == {"deleted": True}
