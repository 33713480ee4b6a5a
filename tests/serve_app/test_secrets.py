"""Client secrets and bring-your-own provider keys, through real HTTP against the shared runtime, with the exact
requests Aomi's widget sends: a tool reads its own client's secret only, a client's own key reaches the provider
in place of the operator's, and no value is ever in a snapshot, an event or the database in plain text."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx

from aomi_runtime.serve_app.settings import Settings
from tests.fake_provider import FakeProvider
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.secret_tools import digest
from tests.serve_app.test_routes import assert_error, finished

OPERATOR_KEY = "sk-fake-provider-key"  # tests/conftest.py: the key the operator configured for the fake provider


def new_client() -> str:
    return str(uuid.uuid4())  # as the widget makes one


def secret_value(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex}"


async def set_secrets(client: httpx.AsyncClient, client_id: str, secrets: dict[str, str], **headers: str) -> None:
    r = await client.post("/api/secrets", json={"client_id": client_id, "secrets": secrets}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"handles": {name: f"$SECRET:{name}" for name in secrets}}


async def everything_said(client: httpx.AsyncClient, session_id: str) -> str:
    """The session's snapshot and every event it published, as text."""
    state = (await client.get("/api/state", headers=h(session_id))).text
    events = (await client.get("/api/events", params={"count": 1000}, headers=h(session_id))).text
    return state + events


def database_bytes(settings: Settings) -> bytes:
    """The runtime's SQLite database as stored, its write-ahead log included."""
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_secrets_are_set_deleted_and_cleared_as_the_widget_sends_them(client: httpx.AsyncClient) -> None:
    c = new_client()
    await set_secrets(client, c, {"API_TOKEN": "a", "PROVIDER_KEY:openai": "sk-b"})
    await set_secrets(client, c, {"API_TOKEN": "replaced"})  # a name set again is replaced, not added
    delete = client.delete
    assert (await delete("/api/secrets/API_TOKEN", params={"client_id": c})).json() == {"deleted": True}
    assert (await delete("/api/secrets/API_TOKEN", params={"client_id": c})).json() == {"deleted": False}
    assert (await delete("/api/secrets", params={"client_id": new_client()})).json() == {"cleared": 0}
    assert (await delete("/api/secrets", params={"client_id": c})).json() == {"cleared": 1}
    assert (await delete("/api/secrets", params={"client_id": c})).json() == {"cleared": 0}


async def tool_result(client: httpx.AsyncClient, session_id: str, headers: dict[str, str], **params: str) -> str:
    """Ask billing's scripted model to run `secret_digest` on the secret TOKEN; the tool's result text."""
    message = '/tool secret_digest {"name": "TOKEN"}'
    r = await client.post(
        "/api/chat", params={"message": message, "app": "billing", **params}, headers={**h(session_id), **headers}
    )
    assert r.status_code == 200, r.text
    done = await finished(client, session_id)
    results = [m["tool_result"][1] for m in done["messages"] if m["tool_result"]]
    assert results, done
    return str(results[-1])  # this turn's


async def test_a_tool_reads_its_own_clients_secret_and_no_other(
    client: httpx.AsyncClient, keys: dict[str, str], runtime_settings: Settings
) -> None:
    billing = k(keys["billing"])
    mine, other, elsewhere = new_client(), new_client(), new_client()
    value, others_value, default_value = secret_value("mine"), secret_value("other"), secret_value("default")
    await set_secrets(client, mine, {"TOKEN": value}, **billing)  # the App the key opens: billing
    await set_secrets(client, other, {"TOKEN": others_value}, **billing)
    await set_secrets(client, elsewhere, {"TOKEN": default_value})  # no key, no app: the default App

    own = sid()
    assert digest(value) in await tool_result(client, own, billing, client_id=mine)
    # Another session of the same client reads it too; a session of another client reads that client's.
    assert digest(value) in await tool_result(client, sid(), billing, client_id=mine)
    assert digest(others_value) in await tool_result(client, sid(), billing, client_id=other)
    # A session bound to no client, or to a client whose secret is another App's, reads nothing.
    unbound = await tool_result(client, sid(), billing)
    assert "No secret 'TOKEN'" in unbound
    other_app = await tool_result(client, sid(), billing, client_id=elsewhere)
    assert "No secret 'TOKEN'" in other_app and digest(default_value) not in other_app

    # The values are in no snapshot or event, and only sealed in the database.
    said = await everything_said(client, own)
    assert digest(value) in said and value not in said
    stored = database_bytes(runtime_settings)
    assert b"aomi_secrets" in stored
    for v in (value, others_value, default_value):
        assert v.encode() not in stored
    path = runtime_settings.database_url.removeprefix("sqlite:///")
    rows = sqlite3.connect(path).execute("SELECT app, client_id, name FROM aomi_secrets WHERE client_id = ?", (mine,))
    assert rows.fetchall() == [("billing", mine, "TOKEN")]

    # Deleted, it is gone for the next turn.
    r = await client.delete("/api/secrets/TOKEN", params={"client_id": mine}, headers=billing)
    assert r.json() == {"deleted": True}
    assert "No secret 'TOKEN'" in await tool_result(client, own, billing, client_id=mine)


async def helpdesk_turn(
    client: httpx.AsyncClient, fake: FakeProvider, session_id: str, **params: str
) -> tuple[str, dict[str, Any]]:
    """A turn of helpdesk (remote models); the key its model request reached the fake provider with."""
    message = f"byok {uuid.uuid4().hex[:8]}"
    r = await client.post("/api/chat", params={"message": message, "app": "helpdesk", **params}, headers=h(session_id))
    assert r.status_code == 200, r.text
    done = await finished(client, session_id)
    sent = [key for last, key in fake.keys if message in last]
    assert sent, f"no model request for {message!r}"
    return sent[0], done


KEYS = "/api/control/provider-keys"


async def test_a_clients_own_provider_key_reaches_the_provider(
    client: httpx.AsyncClient, fake_provider: tuple[FakeProvider, str], runtime_settings: Settings
) -> None:
    fake = fake_provider[0]
    s, c = sid(), new_client()
    used, _ = await helpdesk_turn(client, fake, s, client_id=c)
    assert used == OPERATOR_KEY
    assert (await client.get(KEYS, headers=h(s))).json() == {"provider_keys": []}

    own = secret_value("sk-client-openai")
    r = await client.post(KEYS, json={"provider": "openai", "api_key": own, "label": "mine"}, headers=h(s))
    assert r.status_code == 200, r.text
    shown = {"provider": "openai", "key_prefix": own[:8], "label": "mine", "is_active": True}
    assert r.json() == {"key": shown}
    assert (await client.get(KEYS, headers=h(s))).json() == {"provider_keys": [shown]}

    used, done = await helpdesk_turn(client, fake, s)  # the session is bound to c since its first chat
    assert used == own and done["messages"][-1]["content"].startswith("Echo: byok")
    # Another client's session, in the same App, still uses the operator's key.
    assert (await helpdesk_turn(client, fake, sid(), client_id=new_client()))[0] == OPERATOR_KEY

    # Anthropic's model, chosen for the session: its own key, once the client sets one.
    r = await client.post("/api/control/model", params={"rig": "fake-claude", "app": "helpdesk"}, headers=h(s))
    assert r.status_code == 200, r.text
    assert (await helpdesk_turn(client, fake, s))[0] == OPERATOR_KEY
    claude_key = secret_value("sk-ant-client")
    assert (await client.post(KEYS, json={"provider": "anthropic", "api_key": claude_key}, headers=h(s))).is_success
    assert (await helpdesk_turn(client, fake, s))[0] == claude_key
    listed = (await client.get(KEYS, headers=h(s))).json()["provider_keys"]
    assert [(p["provider"], p["is_active"], p["label"]) for p in listed] == [
        ("anthropic", True, ""),
        ("openai", False, "mine"),
    ]

    said = await everything_said(client, s)
    assert own not in said and claude_key not in said
    stored = database_bytes(runtime_settings)
    assert own.encode() not in stored and claude_key.encode() not in stored

    # Deleted: the operator's key again.
    assert (await client.delete(f"{KEYS}/anthropic", headers=h(s))).json() == {"deleted": True}
    assert (await client.delete(f"{KEYS}/anthropic", headers=h(s))).json() == {"deleted": False}
    assert (await helpdesk_turn(client, fake, s))[0] == OPERATOR_KEY


async def test_provider_keys_are_the_widgets_secrets(
    client: httpx.AsyncClient, fake_provider: tuple[FakeProvider, str]
) -> None:
    # The widget may set a provider key through /api/secrets, by its secret name.
    fake = fake_provider[0]
    s, c = sid(), new_client()
    own = secret_value("sk-widget")
    await set_secrets(client, c, {"PROVIDER_KEY:openai": own})  # no app, no key: the default App's secret
    assert (await helpdesk_turn(client, fake, s, client_id=c))[0] == OPERATOR_KEY  # helpdesk's is its own
    body = {"client_id": c, "secrets": {"PROVIDER_KEY:openai": own}}
    r = await client.post("/api/secrets", params={"app": "helpdesk"}, json=body)
    assert r.status_code == 200, r.text
    assert (await helpdesk_turn(client, fake, s))[0] == own
    assert (await client.delete("/api/secrets", params={"client_id": c, "app": "helpdesk"})).json() == {"cleared": 1}


async def test_provider_keys_need_a_client_and_a_session(client: httpx.AsyncClient) -> None:
    s = sid()
    assert_error(await client.get(KEYS, headers=h(s)), 404, "No session")
    r = await client.post("/api/chat", params={"message": "hi"}, headers=h(s))  # no client_id
    assert r.status_code == 200
    await finished(client, s)
    assert_error(await client.get(KEYS, headers=h(s)), 400, "client_id")
    body = {"provider": "openai", "api_key": "sk-x"}
    assert_error(await client.post(KEYS, json=body, headers=h(s)), 400, "client_id")
    # client_id may be named on the route itself.
    c = new_client()
    r = await client.post(KEYS, params={"client_id": c}, json=body, headers=h(s))
    assert r.status_code == 200 and r.json()["key"]["key_prefix"] == "s"
    assert_error(await client.post(KEYS, json={**body, "provider": "mistral"}, headers=h(s)), 400, "openrouter")
    assert_error(await client.delete(f"{KEYS}/mistral", headers=h(s)), 400, "Unknown provider")


async def test_secrets_of_a_keyed_app_need_its_key(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    c = new_client()
    body = {"client_id": c, "secrets": {"A": "b"}}
    assert_error(await client.post("/api/secrets", params={"app": "research"}, json=body), 401, "X-API-Key")
    r = await client.post("/api/secrets", params={"app": "research"}, json=body, headers=k(keys["billing"]))
    assert_error(r, 403)
    r = await client.delete("/api/secrets", params={"client_id": c, "app": "research"}, headers=k(keys["research"]))
    assert r.json() == {"cleared": 0}
