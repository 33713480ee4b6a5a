"""The history store actor on a real Ray: session actors' commits that arrive together share a transaction, and
a long stored session crosses to a session actor whole and unchanged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import ray

from aomi_runtime.actors.store import HistoryStore
from aomi_runtime.actors.store_client import StoreClient
from aomi_runtime.agent.errors import AppMismatch, StorageError
from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.backends import migrations
from aomi_runtime.backends.history import SqlHistory
from tests.contracts.test_history_backend import long_history


@pytest.fixture
async def store(ray_instance: None, sql_url: str) -> AsyncIterator[Any]:
    actor = HistoryStore.remote("a", sql_url)  # type: ignore[attr-defined]
    yield actor
    await actor.close.remote()
    ray.kill(actor)


def commit(session_id: str, app: str = "a") -> Commit:
    return Commit(
        record=SessionRecord(session_id=session_id, app=app, last_seq=1),
        messages=[Message(id=0, sender="user", content=session_id)],
        events=[Event(seq=1, data={"type": "message"})],
    )


@ray.remote(num_cpus=0)
def commit_from_another_process(store: Any, session_ids: list[str]) -> list[str]:
    """A stand-in for session actors: each flush from a process other than the test's."""

    async def flush_all() -> list[str]:
        client = StoreClient(store)
        results = await asyncio.gather(*(client.commit("a", commit(s)) for s in session_ids), return_exceptions=True)
        return [type(r).__name__ for r in results]

    return asyncio.run(flush_all())


async def test_concurrent_commits_share_transactions_and_each_acknowledged_is_stored(store: Any, sql_url: str) -> None:
    ids = [[f"s-{uuid.uuid4()}" for _ in range(25)] for _ in range(4)]
    results = await asyncio.gather(*(commit_from_another_process.remote(store, group) for group in ids))
    assert results == [["NoneType"] * 25] * 4
    written = (await store.stats.remote())["commits_per_transaction"]
    assert written["sum"] == 100 and written["count"] < 100, written  # fewer transactions than commits
    reader = SqlHistory.from_url(sql_url)
    try:
        for sid in (s for group in ids for s in group):
            stored = await reader.load("a", sid)
            assert stored is not None and [m.content for m in stored.messages] == [sid]
    finally:
        await reader.close()


async def test_a_bad_commit_among_others_fails_alone(store: Any) -> None:
    taken = f"s-{uuid.uuid4()}"
    reader = StoreClient(store)
    ids = [f"s-{uuid.uuid4()}" for _ in range(20)]
    outcomes = await asyncio.gather(
        *(reader.commit("a", commit(s)) for s in ids[:10]),
        reader.commit("a", commit(taken, app="b")),
        *(reader.commit("a", commit(s)) for s in ids[10:]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[10], AppMismatch)
    assert all(o is None for i, o in enumerate(outcomes) if i != 10), outcomes
    for sid in ids:
        assert (await reader.load("a", sid)) is not None
    assert await reader.load("a", taken) is None


async def hands_over_unchanged(store: Any) -> None:
    client = StoreClient(store)
    sid = f"s-{uuid.uuid4()}"
    messages = long_history(10_000)
    record = SessionRecord(session_id=sid, app="a", title="Long", last_seq=0)
    await client.commit("a", Commit(record=record, messages=messages))
    stored = await client.load("a", sid)
    assert stored is not None and stored.record == record and stored.messages == messages
    assert await client.load("a", f"s-{uuid.uuid4()}") is None


async def test_a_10000_message_session_reaches_a_session_actor_unchanged(store: Any) -> None:
    await hands_over_unchanged(store)


async def test_so_it_does_from_a_backend_without_load_json(ray_instance: None) -> None:
    store = HistoryStore.remote("a", "tests.contracts.test_history_backend:custom_backend")  # type: ignore[attr-defined]
    try:
        await hands_over_unchanged(store)
    finally:
        await store.close.remote()
        ray.kill(store)


async def test_with_upgrades_on_start_off_the_stores_refuse_a_database_behind(
    ray_instance: None, tmp_path: Path
) -> None:
    """`migrate_on_start=False` travels from the settings to each App's store, which then refuses a database behind
    the head (naming the command that upgrades it) and serves it once the operator has upgraded it."""
    from aomi_runtime.serve_app.settings import Settings

    url = f"sqlite:///{tmp_path / 'behind.db'}"
    runtime = Settings(database_url=url, migrate_on_start=False, namespace=f"aomi-t{uuid.uuid4().hex[:10]}").runtime()
    try:
        with pytest.raises(StorageError, match=r"at revision none \(empty.*run `aomi-runtime db upgrade`"):
            await runtime.owner("s-1")
        engine = migrations.open_database(url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        assert await runtime.owner("s-1") is None
    finally:
        await runtime.stop()
