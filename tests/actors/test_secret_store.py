"""Client secrets in the App's store actor, on a real Ray and real SQLite and PostgreSQL: sealed with the operator's
key they are in the database and survive the store's restart; without a key they are held in memory only and
lost with it. A value is never in the database in plain text, and opens only under its key, App, client and name."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from typing import Any

import pytest
import ray
from pydantic import SecretStr

from aomi_runtime.actors.store import HistoryStore
from aomi_runtime.agent.errors import ConfigError
from aomi_runtime.backends.secrets import SqlSecrets, parse_key
from tests.helpers import eventually


def new_key() -> SecretStr:
    return SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode())


async def restarted(store: Any) -> None:
    """Kill the store actor and let Ray restart it, as after a crash; wait until it answers again."""
    pid = await store.__ray_call__.remote(lambda self: os.getpid())
    ray.kill(store, no_restart=False)

    async def answers_from_a_new_process() -> bool:
        try:
            return bool(await store.__ray_call__.remote(lambda self: os.getpid()) != pid)
        except ray.exceptions.RayActorError:
            return False

    await eventually(answers_from_a_new_process, timeout=60, interval=0.2)


async def test_sealed_secrets_survive_a_store_restart_and_memory_ones_do_not(ray_instance: None, sql_url: str) -> None:
    key = new_key()
    sealed = HistoryStore.remote("a", sql_url, key)  # type: ignore[attr-defined]
    memory = HistoryStore.remote("b", sql_url, None)  # type: ignore[attr-defined]
    try:
        await asyncio.gather(
            sealed.put_secrets.remote("c", {"T": "sealed-value"}), memory.put_secrets.remote("c", {"T": "memory-value"})
        )
        assert await sealed.secret.remote("c", "T") == "sealed-value"
        assert await memory.secret.remote("c", "T") == "memory-value"
        assert await sealed.secret.remote("other", "T") is None

        await asyncio.gather(restarted(sealed), restarted(memory))
        assert await sealed.secret.remote("c", "T") == "sealed-value"
        assert await memory.secret.remote("c", "T") is None
        assert await sealed.delete_secrets.remote("c") == 1
    finally:
        for store in (sealed, memory):
            await store.close.remote()
            ray.kill(store)


async def test_a_value_is_stored_sealed_and_opens_only_where_it_was_set(tmp_path: Any) -> None:
    path = tmp_path / "secrets.db"
    url, key = f"sqlite:///{path}", new_key()
    secrets = SqlSecrets.open(url, key)
    try:
        await secrets.put("a", "c", {"T": "plain-value-123", "U": "another-value-456"}, label="mine")
        rows = sqlite3.connect(path).execute("SELECT app, client_id, name, sealed, label FROM aomi_secrets").fetchall()
        assert [r[:3] for r in sorted(rows)] == [("a", "c", "T"), ("a", "c", "U")]
        assert b"plain-value" not in path.read_bytes() and "plain-value" not in repr(rows)

        # A sealed value moved to another row does not open there (its App, client and name are bound to it).
        db = sqlite3.connect(path)
        db.execute(
            "UPDATE aomi_secrets SET sealed = (SELECT sealed FROM aomi_secrets WHERE name = 'T') WHERE name = 'U'"
        )
        db.commit()
        assert await secrets.get("a", "c", "U") is None and await secrets.get("a", "c", "T") == "plain-value-123"
        assert [i.name for i in await secrets.describe("a", "c")] == ["T"]
    finally:
        await secrets.close()
    # Another key opens nothing: as if no secret were set.
    other = SqlSecrets.open(url, new_key())
    try:
        assert await other.get("a", "c", "T") is None
    finally:
        await other.close()


@pytest.mark.parametrize("value", ["", "short", base64.urlsafe_b64encode(os.urandom(16)).decode(), "!" * 44])
def test_a_key_that_is_not_32_bytes_is_refused_without_its_value(value: str) -> None:
    with pytest.raises(ConfigError, match="AOMI_SECRETS_KEY") as refused:
        parse_key(SecretStr(value))
    assert not value or value not in str(refused.value)


def test_a_bad_secrets_key_in_the_environment_stops_the_start_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aomi_runtime.serve_app.settings import Settings

    monkeypatch.setenv("AOMI_SECRETS_KEY", "my-plain-secret-value")
    with pytest.raises(ValueError, match="AOMI_SECRETS_KEY must be 32 random bytes") as refused:
        Settings()
    assert "my-plain-secret-value" not in str(refused.value)
    monkeypatch.setenv("AOMI_SECRETS_KEY", str(new_key().get_secret_value()))
    assert Settings().secrets_key is not None
