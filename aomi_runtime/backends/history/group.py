"""Group commit: commits that arrive while one is being written go to the database together, in one transaction.

One write is under way at a time. The first commit starts it at once (no timer, so a lone commit waits for
nothing); those that come meanwhile queue, and the next write takes all of them. Each caller is answered when
the transaction holding its commit is durable. A batch refused for one commit's content (another App's session
id, a row the database rejects) is written again one commit at a time, so that commit fails its own caller only;
a batch the database could not write at all (a timeout, a lost connection) fails every caller in it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DataError, IntegrityError

from ...agent.errors import AppMismatch
from ...agent.protocols import BatchCommits, HistoryBackend
from ...agent.records import Commit

MAX_BATCH = 128  # commits in one transaction: bounds its size and the time one write holds the database


@dataclass
class _Waiting:
    app: str
    commit: Commit
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    """Commits to `backend` through one writer, batched when the backend offers `commit_batch`.

    `on_batch` is told the number of commits in each transaction written.
    """

    def __init__(
        self, backend: HistoryBackend, on_batch: Callable[[int], None] | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self._backend = backend
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def commit(self, app: str, commit: Commit) -> None:
        """Store `commit` as `HistoryBackend.commit` does; returns once it is stored, raises what storing raised."""
        if not isinstance(self._backend, BatchCommits):
            await self._backend.commit(app, commit)
            self._told(1)
            return
        waiting = _Waiting(app, commit)
        self._queue.append(waiting)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        # A caller that gives up (cancelled) has its commit dropped if its write has not begun, else written: either
        # is safe, as writes are idempotent and a cancelled session flush keeps its changes to write again.
        await waiting.done

    async def _write_all(self) -> None:
        while batch := self._take():
            try:
                await self._write(batch)
            except BaseException:  # cancelled (the store closing): nobody waits for ever
                for waiting in [*batch, *self._queue]:
                    waiting.done.cancel()
                self._queue.clear()
                raise

    def _take(self) -> list[_Waiting]:
        """The next batch: queued commits of the first one's App, one per session (a second commit of a session
        waits for the next batch, behind its first), in arrival order."""
        queued = [w for w in self._queue if not w.done.done()]  # the rest's callers were cancelled
        batch: list[_Waiting] = []
        rest: list[_Waiting] = []
        sessions: set[str] = set()
        for waiting in queued:
            session_id = waiting.commit.record.session_id
            if len(batch) < self._max_batch and waiting.app == queued[0].app and session_id not in sessions:
                batch.append(waiting)
                sessions.add(session_id)
            else:
                rest.append(waiting)
        self._queue = rest
        return batch

    async def _write(self, batch: list[_Waiting]) -> None:
        assert isinstance(self._backend, BatchCommits)
        try:
            await self._backend.commit_batch(batch[0].app, [w.commit for w in batch])
        except Exception as exc:
            if len(batch) == 1 or not _one_commit_at_fault(exc):
                # The database itself failed (a timeout, a lost connection): trying each commit again would hold
                # every caller for as many more timeouts. All of them get the error now, and rebuild from storage.
                for waiting in batch:
                    _answer(waiting, exc)
                return
            for waiting in batch:  # each on its own: one bad commit fails only its caller
                try:
                    await self._backend.commit(waiting.app, waiting.commit)
                except Exception as one:
                    _answer(waiting, one)
                else:
                    _answer(waiting, None)
                    self._told(1)
            return
        for waiting in batch:
            _answer(waiting, None)
        self._told(len(batch))

    def _told(self, commits: int) -> None:
        if self._on_batch is not None:
            self._on_batch(commits)


def _one_commit_at_fault(exc: Exception) -> bool:
    """Whether a batch failed for what one of its commits holds (another App's session, a row the database
    refuses), rather than because the database could not write at all."""
    return isinstance(exc, AppMismatch) or isinstance(exc.__cause__, IntegrityError | DataError)


def _answer(waiting: _Waiting, error: Exception | None) -> None:
    if waiting.done.done():
        return  # its caller gave up waiting
    if error is None:
        waiting.done.set_result(None)
    else:
        waiting.done.set_exception(error)
