"""The ingress replicas holding copies of a session actor's snapshots, as that actor keeps track of them.

A replica may answer `GET /api/state` of a session at rest from a copy of its own (`snapshot_copies.py`), with no
call to this actor. Each copy is counted here when it is handed out. A commit of the session (every change is
committed before anyone is told of it) or its leaving this actor tells each holder to drop its copy, and the
commit's events are published, and its call answered, only once each holder said it did (with its next `watch`),
or once that holder's lease ran out: a replica serves a copy only within `LEASE_SECONDS` of sending a call this
actor answered, so a holder that went silent stops serving by itself. So a client reads its own writes through any
replica, and an event seen on a stream is in any snapshot read after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

LEASE_SECONDS = 6.0
HEARTBEAT_SECONDS = 2.0  # a watch with nothing to say returns after this, renewing its replica's lease


def _now() -> float:
    return time.monotonic()


@dataclass
class Reader:
    """One replica, as this actor knows it. `epoch` numbers this record: a replica told a later epoch than the one
    its copies were counted under knows it was forgotten (its lease ran out here) and drops them all."""

    epoch: int
    sessions: dict[str, int] = field(default_factory=dict)  # copies it holds: session -> the newest one's number
    drops: dict[str, int] = field(default_factory=dict)  # copies it must drop: session -> the drop's number
    acked: int = 0  # it made every drop numbered up to this
    contact: float = field(default_factory=_now)  # when its latest call arrived
    gone: bool = False  # it said it left, or was forgotten: nothing waits for it
    told: asyncio.Event = field(default_factory=asyncio.Event)  # wakes its watch
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # wakes those waiting for its acks

    @property
    def lapsed(self) -> bool:
        return _now() >= self.contact + LEASE_SECONDS

    def signal(self, name: str) -> None:
        event = getattr(self, name)
        setattr(self, name, asyncio.Event())
        event.set()


class Readers:
    """The replicas holding copies of the sessions of one session actor.

    Copies handed out, drops and epochs are numbered in one sequence, so that a replica tells a drop that came after
    a copy (which it drops) from one that came before (which it ignores), however their answers cross on the way."""

    def __init__(self) -> None:
        self._readers: dict[str, Reader] = {}
        self._numbers = itertools.count(1)
        self._fences: dict[str, float] = {}  # session -> until when its commits wait (its last actor was lost)

    def hold(self, reader_id: str, session_id: str) -> tuple[int, int]:
        """Count a copy handed out to `reader_id`; returns the epoch the replica keeps it under, and its number."""
        reader = self._reader(reader_id)
        number = reader.sessions[session_id] = next(self._numbers)
        return reader.epoch, number

    def fence(self, session_id: str, seconds: float) -> None:
        """Hold back the session's commits for `seconds`: the replicas' leases on its lost actor's copies."""
        self._fences[session_id] = _now() + seconds

    def dropping(self, session_id: str) -> Awaitable[None] | None:
        """`drop`, or None where no copy of the session is out and nothing fences it: a commit then waits for
        nothing, and makes no task to (the hot path of a session no replica reads from its copies)."""
        if session_id in self._fences or any(session_id in reader.sessions for reader in self._readers.values()):
            return self.drop(session_id)
        return None

    async def drop(self, session_id: str) -> None:
        """Tell every holder of a copy of `session_id` to drop it; return once each did, or its lease ran out."""
        if (until := self._fences.get(session_id)) is not None:
            if until > _now():
                await asyncio.sleep(until - _now())
            self._fences.pop(session_id, None)
        self._forget_lapsed()
        waits = []
        for reader in self._readers.values():
            if reader.sessions.pop(session_id, None) is not None:
                number = reader.drops[session_id] = next(self._numbers)
                reader.signal("told")
                waits.append(self._acked(reader, number))
        if waits:
            await asyncio.gather(*waits)

    async def drop_all(self) -> None:
        sessions = {s for reader in self._readers.values() for s in reader.sessions}
        await asyncio.gather(*(self.drop(s) for s in sessions))

    async def watch(
        self, reader_id: str, epoch: int, acked: int, released: dict[str, int], timeout: float = HEARTBEAT_SECONDS
    ) -> tuple[int, int, dict[str, int]]:
        """A replica's long poll: under `epoch`, it made the drops numbered up to `acked` and let go the copies
        `released` (session -> the number of the copy let go). Returns this record's epoch, the number up to which
        it must ack, and the copies to drop with their numbers: as soon as there are any, else after `timeout`."""
        reader = self._reader(reader_id)
        if epoch == reader.epoch:
            for session_id, number in released.items():
                if reader.sessions.get(session_id, number + 1) <= number:  # not a copy handed out since
                    del reader.sessions[session_id]
            if acked > reader.acked:
                reader.acked = acked
                reader.drops = {s: n for s, n in reader.drops.items() if n > acked}
                reader.signal("answered")
        if not reader.drops:
            told = reader.told
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(told.wait(), timeout)
        drops = dict(reader.drops)
        return reader.epoch, max(drops.values(), default=reader.acked), drops

    def leave(self, reader_id: str) -> None:
        """A replica stopping: it serves no copy any more, so nothing waits for it."""
        if (reader := self._readers.pop(reader_id, None)) is not None:
            self._gone(reader)

    def _reader(self, reader_id: str) -> Reader:
        self._forget_lapsed()
        reader = self._readers.get(reader_id)
        if reader is None:
            reader = self._readers[reader_id] = Reader(epoch=next(self._numbers))
        reader.contact = _now()
        return reader

    async def _acked(self, reader: Reader, number: int) -> None:
        while reader.acked < number and not reader.gone:
            left = reader.contact + LEASE_SECONDS - _now()
            if left <= 0:  # silent past its lease: it serves no copy of ours any more
                self._forget_lapsed()
                return
            answered = reader.answered
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), left)

    def _forget_lapsed(self) -> None:
        for reader_id in [r for r, reader in self._readers.items() if reader.lapsed]:
            self._gone(self._readers.pop(reader_id))

    @staticmethod
    def _gone(reader: Reader) -> None:
        reader.gone = True
        reader.signal("answered")
        reader.signal("told")
