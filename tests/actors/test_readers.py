"""A session actor's count of the copies replicas hold (actors/readers.py), on its own: plain asyncio, no Ray."""

from __future__ import annotations

import asyncio
import time

from aomi_runtime.actors.readers import Readers


async def finished_within(seconds: float, awaitable: asyncio.Future[None] | asyncio.Task[None]) -> bool:
    done, _ = await asyncio.wait({awaitable}, timeout=seconds)
    return bool(done)


async def test_a_drop_waits_until_the_holder_says_it_dropped_its_copy() -> None:
    readers = Readers()
    epoch, _ = readers.hold("r", "s")
    dropping = asyncio.create_task(readers.drop("s"))
    assert not await finished_within(0.2, dropping), "answered before the holder dropped its copy"
    _, acked, drops = await readers.watch("r", epoch, 0, {}, timeout=0)
    assert list(drops) == ["s"]
    await readers.watch("r", epoch, acked, {}, timeout=0)
    assert await finished_within(0.5, dropping)


async def test_letting_go_of_an_older_copy_leaves_a_newer_one_counted() -> None:
    """A replica lets a copy go (unread, or for room) while a read of the same session, on its way, is handed a
    newer one: the release names the older copy's number, so the newer stays counted and is dropped on change."""
    readers = Readers()
    epoch, older = readers.hold("r", "s")
    readers.hold("r", "s")  # the newer copy, on its way to the replica
    await readers.watch("r", epoch, 0, {"s": older}, timeout=0)
    dropping = asyncio.create_task(readers.drop("s"))
    assert not await finished_within(0.2, dropping), "the newer copy was un-counted with the older"
    readers.leave("r")
    assert await finished_within(0.5, dropping)


async def test_letting_go_of_the_newest_copy_un_counts_it() -> None:
    readers = Readers()
    epoch, number = readers.hold("r", "s")
    await readers.watch("r", epoch, 0, {"s": number}, timeout=0)
    started = time.monotonic()
    await readers.drop("s")
    assert time.monotonic() - started < 0.1


async def test_a_replica_that_leaves_holds_up_no_drop() -> None:
    readers = Readers()
    readers.hold("r", "s")
    dropping = asyncio.create_task(readers.drop("s"))
    await asyncio.sleep(0.05)
    readers.leave("r")
    assert await finished_within(0.5, dropping)


async def test_a_fenced_session_holds_back_its_commits_for_the_fence() -> None:
    readers = Readers()
    readers.fence("s", 0.5)
    started = time.monotonic()
    await readers.drop("s")
    assert 0.4 < time.monotonic() - started < 1.5
    started = time.monotonic()
    await readers.drop("s")  # once past, no more waiting
    assert time.monotonic() - started < 0.1


async def test_epochs_and_numbers_grow_in_one_sequence() -> None:
    readers = Readers()
    first_epoch, first = readers.hold("r", "s")
    _, second = readers.hold("q", "s")
    assert first_epoch < first < second


async def test_a_commit_waits_on_nothing_only_where_no_copy_is_out_and_nothing_fences() -> None:
    readers = Readers()
    assert readers.dropping("s") is None, "no copy out: a commit need not wait"
    epoch, _ = readers.hold("r", "s")
    assert readers.dropping("other") is None
    held = readers.dropping("s")
    assert held is not None, "a copy is out: the commit must wait for its drop"
    task = asyncio.ensure_future(held)
    assert not await finished_within(0.2, task)
    _, acked, _ = await readers.watch("r", epoch, 0, {}, timeout=0)
    await readers.watch("r", epoch, acked, {}, timeout=0)  # the holder dropped it
    assert await finished_within(0.5, task)
    assert readers.dropping("s") is None
    readers.fence("f", 0.3)
    fenced = readers.dropping("f")
    assert fenced is not None, "a fenced session's commit waits out its fence"
    started = time.monotonic()
    await fenced
    assert time.monotonic() - started >= 0.25
