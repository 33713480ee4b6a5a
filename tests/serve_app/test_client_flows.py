"""The flows of Aomi's client and widget, each driven with the exact requests they send (query strings, no body
on system, no key where they send none), checking what they read: statuses, shapes, ISO timestamps."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.helpers import eventually
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.secret_tools import digest
from tests.serve_app.sse_client import Stream, frames
from tests.serve_app.test_routes import assert_error, finished
from tests.serve_app.test_secrets import new_client, secret_value, set_secrets, tool_result

WIDGET_STREAM = {"Accept": "text/event-stream"}  # with X-Session-Id, all the widget sends: no Last-Event-ID, no key


def assert_iso(timestamp: str) -> None:
    """As `new Date(timestamp)` reads it: ISO 8601, here always UTC."""
    assert datetime.fromisoformat(timestamp).utcoffset() == UTC.utcoffset(None), timestamp


def assert_system_message(res: dict[str, Any], content: str) -> None:
    assert (res["sender"], res["content"], res["tool_result"], res["is_streaming"]) == ("system", content, None, False)
    assert_iso(res["timestamp"])


async def stored_events(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    return list((await client.get("/api/events", params={"count": 1000}, headers=h(session_id))).json())


async def follow(client: httpx.AsyncClient, session_id: str, stream: Stream, until: str, **params: int) -> None:
    async with client.stream("GET", "/api/updates", params=params, headers={**h(session_id), **WIDGET_STREAM}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        async for _, data in frames(r, stream):
            if data["type"] == until:
                return


async def test_the_widgets_event_stream_starts_live_and_after_0_replays_everything(client: httpx.AsyncClient) -> None:
    s = sid()
    r = await client.post("/api/chat", params={"message": '/tool long_task {"steps": 2}'}, headers=h(s))
    assert r.status_code == 200
    await finished(client, s)
    # the whole first turn is stored, its title last: nothing of it is still to come live
    before = await eventually(lambda: _with_title(client, s), timeout=20)
    assert [e["type"] for e in before].count("tool_update") == 2

    live = Stream()
    reader = asyncio.create_task(follow(client, s, live, "processing_done"))
    await asyncio.wait_for(live.opened.wait(), 20)
    await eventually(lambda: live.comments >= 3, timeout=10)  # keep-alives every second here; no old event came
    assert live.frames == []
    await client.post("/api/chat", params={"message": '/tool long_task {"steps": 1}'}, headers=h(s))
    await asyncio.wait_for(reader, 30)
    assert live.seqs == list(range(len(before) + 1, len(before) + 1 + len(live.frames)))  # the next ones, no gap
    assert live.types[0] == "processing_started" and live.types.count("tool_update") == 1

    everything = Stream()
    await asyncio.wait_for(follow(client, s, everything, "processing_done", after=0), 30)
    assert (
        everything.seqs[0] == 1
        and [d for _, d in everything.frames] == (await stored_events(client, s))[: len(everything.frames)]
    )
    assert everything.types.count("processing_done") == 1 and everything.types.count("tool_update") == 2


async def _with_title(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]] | None:
    events = await stored_events(client, session_id)
    return events if any(e["type"] == "title_changed" for e in events) else None


async def test_a_stream_opened_before_its_session_exists_gets_its_first_event(client: httpx.AsyncClient) -> None:
    s = sid()
    stream = Stream()
    reader = asyncio.create_task(follow(client, s, stream, "processing_done"))
    await asyncio.wait_for(stream.opened.wait(), 20)
    await client.post("/api/chat", params={"message": "hello"}, headers=h(s))
    await asyncio.wait_for(reader, 30)
    assert stream.seqs[0] == 1 and stream.types[0] == "processing_started"


async def test_system_before_the_first_chat_makes_the_session_then_chat_goes_on(client: httpx.AsyncClient) -> None:
    s = sid()
    wallet = {
        "type": "wallet:state_changed",
        "payload": {"address": "0xabc", "chain_id": 1, "is_connected": True, "ens_name": None},
    }
    text = json.dumps(wallet)
    r = await client.post("/api/system", params={"message": text}, headers=h(s))  # no body, no key
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"res"}
    assert_system_message(r.json()["res"], text)
    assert (await client.get(f"/api/sessions/{s}")).status_code == 200  # made, in `default`
    assert_error(await client.post("/api/system", params={"message": "x", "app": "research"}, headers=h(s)), 409)
    snap = (await client.post("/api/chat", params={"message": "hi"}, headers=h(s))).json()
    assert snap["system_events"] == [{"InlineCall": {"type": "wallet:state_changed", "payload": wallet}}]
    done = await finished(client, s)
    assert done["messages"][0]["sender"] == "user" and done["messages"][-1]["content"] == 'You said: "hi"'
    for message in done["messages"]:
        assert_iso(message["timestamp"])
    assert (await stored_events(client, s))[0] == {"session_id": s, **wallet}

    notice = await client.post("/api/system", params={"message": "Gas is high"}, headers=h(sid()))
    assert_system_message(notice.json()["res"], "Gas is high")


async def test_system_makes_a_session_in_the_app_it_names_only_with_its_key(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    s = sid()
    params = {"message": "hello", "app": "research"}
    assert_error(await client.post("/api/system", params=params, headers=h(s)), 401, "X-API-Key")
    assert_error(await client.get(f"/api/sessions/{s}"), 404)  # refused: nothing made
    r = await client.post("/api/system", params=params, headers={**h(s), **k(keys["research"])})
    assert r.status_code == 200, r.text
    # it is research's: a chat naming no App is a turn there (with the key), one naming another App a conflict
    r = await client.post("/api/chat", params={"message": "hi"}, headers={**h(s), **k(keys["research"])})
    assert r.status_code == 200, r.text
    assert_error(await client.post("/api/chat", params={"message": "hi", "app": "default"}, headers=h(s)), 409)
    assert_error(await client.post("/api/system", params={"message": "x", "app": "default"}, headers=h(s)), 409)


async def test_a_listed_thread_of_another_app_is_warmed_in_its_own_app(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    s, research = sid(), k(keys["research"])
    r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers={**h(s), **research})
    assert r.status_code == 200
    warmed = await client.post("/api/sessions", json={}, headers=h(s))  # the widget: no app, no key
    assert warmed.status_code == 200 and warmed.json() == {"session_id": s, "title": "New Chat"}
    assert_error(await client.post("/api/sessions", params={"app": "default"}, json={}, headers=h(s)), 409)
    r = await client.post("/api/sessions", params={"app": "billing"}, json={}, headers={**h(s), **k(keys["billing"])})
    assert_error(r, 409, "another App")
    # a model chosen naming no App is chosen in the session's
    r = await client.post("/api/control/model", params={"rig": "Scripted"}, headers={**h(s), **research})
    assert r.json() == {"success": True, "rig": "scripted", "baml": None, "created": False}


async def test_a_keyed_apps_session_is_changed_by_its_id_alone(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    s, owner, research = sid(), f"0x{uuid.uuid4().hex}", k(keys["research"])
    r = await client.post("/api/chat", params={"message": "hi", "app": "research", "public_key": owner},
                          headers={**h(s), **research})  # fmt: skip
    assert r.status_code == 200
    await finished(client, s)
    # all without a key, as Aomi's client sends them
    assert (await client.post("/api/interrupt", headers=h(s))).json()["is_processing"] is False
    r = await client.post("/api/system", params={"message": "Wallet disconnected"}, headers=h(s))
    assert_system_message(r.json()["res"], "Wallet disconnected")
    renamed = await client.patch(f"/api/sessions/{s}", json={"title": "Ours"})
    assert renamed.json() == {"session_id": s, "title": "Ours"}
    assert (await client.post(f"/api/sessions/{s}/archive")).json() == {"session_id": s, "is_archived": True}
    assert (await client.post(f"/api/sessions/{s}/unarchive")).json() == {"session_id": s, "is_archived": False}
    stream = Stream()
    await asyncio.wait_for(follow(client, s, stream, "title_changed", after=0), 20)
    # what still needs the key: a turn, a model, a listing, a new session
    assert_error(await client.post("/api/chat", params={"message": "more"}, headers=h(s)), 401, "X-API-Key")
    assert_error(await client.post("/api/control/model", params={"rig": "scripted"}, headers=h(s)), 401, "X-API-Key")
    assert (await client.get("/api/sessions", params={"public_key": owner})).json() == []
    listed = (await client.get("/api/sessions", params={"public_key": owner}, headers=research)).json()
    assert [(x["session_id"], x["title"]) for x in listed] == [(s, "Ours")]
    r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers=h(sid()))
    assert_error(r, 401, "X-API-Key")
    assert (await client.delete(f"/api/sessions/{s}")).json() == {"deleted": True}
    assert_error(await client.get(f"/api/sessions/{s}"), 404)


async def test_state_binds_a_client_only_to_a_session_bound_to_none(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    billing = k(keys["billing"])
    mine, other = new_client(), new_client()
    value, others_value = secret_value("mine"), secret_value("other")
    await set_secrets(client, mine, {"TOKEN": value}, **billing)
    await set_secrets(client, other, {"TOKEN": others_value}, **billing)
    s = sid()
    assert digest(value) in await tool_result(client, s, billing, client_id=mine)
    # Polling state takes no key: naming another client there, with the id alone, leaves the session's own, so
    # its later turns (follow-ups no chat started too) never read another client's secrets or use its keys.
    r = await client.get("/api/state", params={"client_id": other}, headers=h(s))
    assert r.status_code == 200, r.text
    assert digest(value) in await tool_result(client, s, billing)
    # A chat, which takes the key in a keyed App, rebinds it.
    assert digest(others_value) in await tool_result(client, s, billing, client_id=other)
    # A session bound to no client is bound by state, as the client polls it before its first chat.
    fresh = sid()
    r = await client.post("/api/sessions", params={"app": "billing"}, json={}, headers={**h(fresh), **billing})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/state", params={"client_id": mine}, headers=h(fresh))).status_code == 200
    assert digest(value) in await tool_result(client, fresh, billing)


async def test_deleting_an_id_never_stored_answers_200_deleted_false(client: httpx.AsyncClient) -> None:
    never = sid()
    r = await client.delete(f"/api/sessions/{never}")
    assert (r.status_code, r.json()) == (200, {"deleted": False})
    s = sid()
    assert (await client.post("/api/sessions", json={}, headers=h(s))).status_code == 200
    assert (await client.delete(f"/api/sessions/{s}")).json() == {"deleted": True}
    assert (await client.delete(f"/api/sessions/{s}")).json() == {"deleted": False}  # and again: idempotent


async def test_the_session_follows_the_wallet_a_chat_names(client: httpx.AsyncClient) -> None:
    s, a, b = sid(), f"0xa{uuid.uuid4().hex}", f"0xb{uuid.uuid4().hex}"
    await client.post("/api/chat", params={"message": "one", "public_key": a}, headers=h(s))
    await finished(client, s)
    assert [x["session_id"] for x in (await client.get("/api/sessions", params={"public_key": a})).json()] == [s]
    await client.post("/api/chat", params={"message": "two", "public_key": b}, headers=h(s))
    await finished(client, s)
    assert (await client.get("/api/sessions", params={"public_key": a})).json() == []
    listed = (await client.get("/api/sessions", params={"public_key": b})).json()
    assert [x["session_id"] for x in listed] == [s]
    assert_iso(listed[0]["created_at"])
    assert_iso(listed[0]["updated_at"])


async def test_choosing_a_model_says_whether_it_made_the_session_and_models_follow_the_key(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    s = sid()
    params = {"rig": "scripted", "app": "default", "client_id": "client-1"}
    r = await client.post("/api/control/model", params=params, headers=h(s))
    assert r.json() == {"success": True, "rig": "scripted", "baml": None, "created": True}
    r = await client.post("/api/control/model", params=params, headers=h(s))
    assert r.json() == {"success": True, "rig": "scripted", "baml": None, "created": False}
    # no `app`, as the client asks: the models of the App its key opens, else default's
    assert (await client.get("/api/control/models", headers=k(keys["research"]))).json() == ["Fake GPT", "Scripted"]
    assert (await client.get("/api/control/models")).json() == ["Scripted (offline)"]
