"""Group commit against real databases: commits that arrive together share one transaction, every acknowledged
commit is stored, and a commit that cannot be stored fails its own caller only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from aomi_runtime.agent.errors import AppMismatch, StorageError
from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.backends.history import GroupCommit, InMemoryHistory, SqlHistory, open_history


@pytest.fixture
async def history(sql_url: str) -> AsyncIterator[SqlHistory]:
    backend = SqlHistory.from_url(sql_url)
    await backend.setup()
    yield backend
    await backend.close()


def commit(session_id: str, n: int = 0, app: str = "a") -> Commit:
    return Commit(
        record=SessionRecord(session_id=session_id, app=app, last_seq=n + 1),
        messages=[Message(id=n, sender="user", content=f"{session_id} {n}")],
        events=[Event(seq=n + 1, data={"type": "message", "n": n})],
    )


async def stored_contents(url: str, session_ids: list[str]) -> dict[str, list[str]]:
    """What a fresh connection finds on disk: no cache of the writer's can answer."""
    reader = SqlHistory.from_url(url)
    try:
        found = {}
        for sid in session_ids:
            stored = await reader.load("a", sid)
            found[sid] = [] if stored is None else [m.content for m in stored.messages]
        return found
    finally:
        await reader.close()


async def test_commits_that_arrive_together_share_a_transaction_and_all_land(history: SqlHistory, sql_url: str) -> None:
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    ids = [f"s-{uuid.uuid4()}" for _ in range(40)]
    await asyncio.gather(*(group.commit("a", commit(sid)) for sid in ids))  # every one acknowledged
    assert sum(batches) == 40 and max(batches) > 1, batches
    assert await stored_contents(sql_url, ids) == {sid: [f"{sid} 0"] for sid in ids}
    assert [e.seq for e in await history.events("a", ids[-1], 0, 10)] == [1]


async def test_commits_queued_behind_a_write_go_in_the_next_transaction(history: SqlHistory, sql_url: str) -> None:
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    first = asyncio.create_task(group.commit("a", commit("lone")))
    await asyncio.sleep(0)  # its write has begun
    ids = [f"s-{uuid.uuid4()}" for _ in range(10)]
    await asyncio.gather(first, *(group.commit("a", commit(sid)) for sid in ids))
    assert batches == [1, 10]
    assert await stored_contents(sql_url, ["lone", *ids]) == {sid: [f"{sid} 0"] for sid in ["lone", *ids]}


async def test_a_session_committed_twice_at_once_keeps_its_order(history: SqlHistory) -> None:
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    sid = f"s-{uuid.uuid4()}"
    first, second = commit(sid, 0), commit(sid, 0)
    second.messages[0].content = "second"
    second.record.title = "Second"
    await asyncio.gather(group.commit("a", first), group.commit("a", commit("other")), group.commit("a", second))
    assert batches == [2, 1]  # the second commit of a session waits for the next transaction
    stored = await history.load("a", sid)
    assert stored is not None and stored.record.title == "Second" and stored.messages[0].content == "second"


async def test_a_bad_commit_in_a_batch_fails_its_own_caller_only(history: SqlHistory, sql_url: str) -> None:
    taken = f"s-{uuid.uuid4()}"
    await history.commit("b", commit(taken, app="b"))  # another App's session id
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    ids = [f"s-{uuid.uuid4()}" for _ in range(8)]
    results = await asyncio.gather(
        *(group.commit("a", commit(sid)) for sid in ids[:4]),
        group.commit("a", commit(taken)),
        *(group.commit("a", commit(sid)) for sid in ids[4:]),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [type(None)] * 4 + [AppMismatch] + [type(None)] * 4
    assert await stored_contents(sql_url, ids) == {sid: [f"{sid} 0"] for sid in ids}
    stored = await history.load("b", taken)
    assert stored is not None and stored.messages[0].content == f"{taken} 0"  # untouched
    assert sum(batches) == 8  # written one by one after the batch failed


async def test_a_batch_the_database_cannot_write_fails_all_its_callers_at_once(
    history: SqlHistory, sql_url: str
) -> None:
    # A real failure of the database, not of a commit's content: a table it writes is gone (renamed meanwhile).
    # Retried one by one, each commit would wait for its own failure (a timeout, on a stalled server); the
    # whole batch is answered with its one error instead, which names every session in it.
    other = SqlHistory.from_url(sql_url)
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    ids = [f"s-{uuid.uuid4()}" for _ in range(6)]
    try:
        async with other._engine.begin() as conn:
            await conn.execute(text("ALTER TABLE aomi_events RENAME TO aomi_events_away"))
        results = await asyncio.gather(*(group.commit("a", commit(sid)) for sid in ids), return_exceptions=True)
    finally:
        async with other._engine.begin() as conn:
            await conn.execute(text("ALTER TABLE aomi_events_away RENAME TO aomi_events"))
        await other.close()
    assert all(isinstance(r, StorageError) for r in results), results
    # The first commit was written alone; the other five queued behind it and failed together, as one batch.
    assert len({str(r) for r in results[1:]}) == 1 and all(repr(sid) in str(results[1]) for sid in ids[1:])
    assert batches == []
    assert await stored_contents(sql_url, ids) == {sid: [] for sid in ids}


async def test_a_caller_cancelled_before_its_write_began_is_left_out(history: SqlHistory) -> None:
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    first = asyncio.create_task(group.commit("a", commit("first")))
    await asyncio.sleep(0)
    gone = asyncio.create_task(group.commit("a", commit("gone")))
    kept = asyncio.create_task(group.commit("a", commit("kept")))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batches == [1, 1]
    assert await history.load("a", "gone") is None and await history.load("a", "kept") is not None


async def test_a_backend_without_batches_commits_one_by_one() -> None:
    backend = open_history("tests.contracts.test_history_backend:custom_backend")
    assert isinstance(backend, InMemoryHistory)
    batches: list[int] = []
    group = GroupCommit(backend, on_batch=batches.append)
    await asyncio.gather(*(group.commit("a", commit(f"s{i}")) for i in range(5)))
    assert batches == [1] * 5
    assert await backend.count("a") == 5
