"""What SECURITY.md promises: nothing a user sent (nor a key, nor a session id) in the logs at the default
level, App keys stored only as hashes, CORS as configured, the embedded default on localhost only."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from aomi_runtime.agent.errors import Forbidden
from aomi_runtime.agent.logs import fingerprint, log_failure
from aomi_runtime.backends.keys import SqlKeys
from aomi_runtime.client import Client
from aomi_runtime.client.bootstrap import InProcessTransport
from aomi_runtime.serve_app.api import create_api
from aomi_runtime.serve_app.settings import DEFAULT_HOST, Settings
from tests.helpers import eventually


async def make_key(database_url: str, app: str) -> str:
    store = SqlKeys.from_url(database_url)
    try:
        return await store.create(app, "security tests")
    finally:
        await store.close()


def logs_matching(logs: Path, *needles: str) -> str:
    """Lines of any of Ray's log files (every process's, the session actors' stderr included) with a needle."""
    found = subprocess.run(["grep", "-rhaF", *[f"-e{n}" for n in needles], str(logs)], capture_output=True, text=True)
    # 1: nothing found. 2 only for a file removed while grep walked the folder (Ray removes a stopped worker's).
    errors = [e for e in found.stderr.splitlines() if not e.endswith("No such file or directory")]
    assert found.returncode in (0, 1) or (found.returncode == 2 and not errors), found.stderr
    return found.stdout


def count_logged(logs: Path, line: str) -> int:
    return logs_matching(logs, line).count(line)


def test_nothing_a_user_sent_reaches_the_logs(runtime_url: str, runtime_settings: Settings, ray_instance: Path) -> None:
    secret = f"SECRET{uuid.uuid4().hex[:12]}"
    key = asyncio.run(make_key(runtime_settings.database_url, "research"))
    # What the runtime says at the default level of the failures below: counted before, so the lines of this
    # test's own turns can be waited for (other tests' turns fail the same way).
    tool_failed, keyed_tool_failed = "tool always_fails failed: RuntimeError", "tool long_task failed: ValueError"
    before = {line: count_logged(ray_instance, line) for line in (tool_failed, keyed_tool_failed)}
    with Client(runtime_url) as client:
        session = client.session()
        session.send(f"{secret}-message count to 2", user_state={"wallet": f"{secret}-state"})
        failed = session.send(f'/tool always_fails {{"q": "{secret}-tool-argument"}}')
        assert "always_fails failed" in failed.text  # the failure that should be logged, without its arguments
        session.send(f"/error {secret}-provider-error")
        session.rename(f"{secret}-title")
        session.system(f"{secret}-system")
    with Client(runtime_url, app="research", api_key=key) as keyed:
        keyed_session = keyed.session()
        # A remote model's tool call whose failure's text holds the secret: the turn is awaited to its end.
        reply = keyed_session.send(f'call long_task {{"steps": "{secret}-keyed"}}')
        assert f"ValueError: invalid literal for int() with base 10: '{secret}-keyed'" in reply.text
        # Its title, made after the turn by the same remote model, is the last thing the session does.
        # (the fake model's title names the conversation's message, so it carries the secret too)
        asyncio.run(eventually(lambda: keyed_session.state().title.startswith("GPT title: call long_task")))
    with (
        Client(runtime_url, app="research", api_key=f"{key}x") as wrong,
        pytest.raises(Forbidden, match="This key does not open the App 'research'"),
    ):
        wrong.session()

    # A client's secret, and its own provider key, which a turn of its session then calls the model with.
    client_id = f"client-{uuid.uuid4()}"
    byok = str(uuid.uuid4())
    with httpx.Client(base_url=runtime_url, timeout=30, headers={"X-Session-Id": byok}) as raw:
        assert raw.post("/api/secrets", json={"client_id": client_id, "secrets": {"T": f"{secret}-secret"}}).is_success
        assert raw.post("/api/chat", params={"message": "hi", "app": "helpdesk", "client_id": client_id}).is_success
        key_sent = {"provider": "openai", "api_key": f"{secret}-provider-key", "label": f"{secret}-label"}
        assert raw.post("/api/control/provider-keys", json=key_sent).is_success
        asyncio.run(eventually(lambda: not raw.get("/api/state").json()["is_processing"]))
        assert raw.post("/api/chat", params={"message": "again", "app": "helpdesk"}).is_success
        asyncio.run(eventually(lambda: not raw.get("/api/state").json()["is_processing"]))

    # The logs are searched, and do hold what the runtime says at the default level: each failure above, by class.
    for line, count in before.items():
        asyncio.run(eventually(lambda line=line, count=count: count_logged(ray_instance, line) > count, timeout=60))
    secret_part = key.split("_", 2)[-1]
    assert logs_matching(ray_instance, secret, secret_part, session.id, keyed_session.id, client_id, byok) == ""


def test_a_failure_is_logged_without_its_text_at_the_default_level(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("aomi_runtime.test")
    try:
        {"a": 1}["the user's own words"]
    except KeyError as exc:
        with caplog.at_level(logging.INFO, logger="aomi_runtime"):
            log_failure(log, f"turn of session {fingerprint('s-1')}", exc)
        assert "the user's own words" not in caplog.text and "s-1" not in caplog.text
        assert f"turn of session {fingerprint('s-1')} failed: KeyError at test_security.py:" in caplog.text
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="aomi_runtime"):
            log_failure(log, "turn", exc)
        assert "the user's own words" in caplog.text  # for an operator who turns DEBUG on


async def test_keys_are_stored_as_hashes_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = SqlKeys.from_url(url)
    try:
        key = await store.create("vault", "ops")
        _, key_id, secret = key.split("_", 2)
        assert await store.check("vault", key)
        assert not await store.check("other", key)  # scoped to its App
        assert not await store.check("vault", f"aomi_{key_id}_{secret[:-1]}x")
        assert not await store.check("vault", "not-a-key")
        rows = sqlite3.connect(tmp_path / "keys.db").execute("SELECT * FROM aomi_keys").fetchall()
        stored = repr(rows)
        assert key_id in stored and secret not in stored and key not in stored
        assert await store.revoke(key_id) and not await store.check("vault", key)
    finally:
        await store.close()


async def test_cors_allows_only_the_origins_configured(runtime_settings: Settings, runtime_url: str) -> None:
    settings = runtime_settings.model_copy(update={"cors_origins": ("https://app.example",)})
    api = create_api(settings.runtime(), settings)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-session-id"}
    async with httpx.AsyncClient(transport=InProcessTransport(api), base_url="http://in-process") as client:
        allowed = await client.options("/api/chat", headers={"Origin": "https://app.example", **preflight})
        refused = await client.options("/api/chat", headers={"Origin": "https://evil.example", **preflight})
        read = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    assert read.text == "OK" and "access-control-allow-origin" not in read.headers
    assert Settings.model_fields["cors_origins"].default == ("*",)  # docs/api.md's default: any origin


def test_the_embedded_default_listens_on_localhost_only(runtime_url: str, runtime_settings: Settings) -> None:
    """The shared runtime is started on its settings' host, the default, as `launch` starts it: what its processes
    listen on is checked, and that no other address of this machine answers on its port."""
    import socket

    import psutil

    assert DEFAULT_HOST == "127.0.0.1" and Settings().host == DEFAULT_HOST and runtime_settings.host == DEFAULT_HOST
    port = runtime_settings.port
    listening = {
        c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}, f"the runtime listens on {listening or 'nothing'} at port {port}"
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # it answers there
    # Elsewhere, nothing: another loopback address (any address of 127/8 reaches a socket bound to all of them),
    # and this machine's other IPv4 addresses.
    others = {"127.0.0.2"} | {
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    }
    for address in sorted(others):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=10).close()
