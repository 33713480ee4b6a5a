"""An ingress replica's copies of the snapshots of sessions at rest: `GET /api/state` answered with no call to the
session's actor, and each copy dropped when its session changes.

A session actor hands out a copy only while its session is at rest (no turn, title or background call running,
nothing queued, no system event to hand out), and counts it (`readers.py`, the actor's side). For each actor whose
copies it holds, this replica keeps one long poll open (`SessionActor.watch`), through which the actor tells it
which copies to drop, and by which it says it dropped them: the actor publishes a commit's events, and answers the
call that made it, only after that. A copy is served only within `LEASE_SECONDS` of sending a call the actor
answered, so if the poll stops (the actor went, or this replica is too slow to ask) the copies stop being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .hosts import actor_key
from .readers import LEASE_SECONDS

MAX_BYTES = 64 << 20  # the copies one replica keeps, in all; the least recently read go first
UNUSED_SECONDS = 10.0  # a copy not read for this long is let go; an actor with none left is no longer watched


def etag_of(body: bytes) -> str:
    """A snapshot's version as a strong ETag: a hash of all it holds."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


@dataclass
class Copy:
    body: bytes
    etag: str
    actor: str
    bound: bool  # a client is bound to the session: a read naming one changes nothing
    number: int = 0  # as the actor numbered it: a drop numbered above it drops it (0: not to be kept)
    used: float = field(default_factory=time.monotonic)

    @property
    def quiet(self) -> bool:
        """It hands out no system event: an actor numbers only copies of a session at rest, which has none."""
        return self.number > 0


@dataclass(frozen=True)
class Fetched:
    """A snapshot as a session actor's `read` answers it, with the handle of the actor that answered."""

    body: bytes
    handle: Any
    bound: bool  # a client is bound to the session
    hold: tuple[int, int] | None  # the epoch and number its copy is counted under; None: not to be kept


@dataclass
class Watch:
    """The long poll on one session actor, and what this replica holds of it."""

    handle: Any
    epoch: int
    acked: int = 0
    lease_until: float = 0.0
    sessions: set[str] = field(default_factory=set)  # copies held
    released: dict[str, int] = field(default_factory=dict)  # copies let go here (their numbers), still counted
    touched: set[str] = field(default_factory=set)  # sessions read from copies since the last poll
    unacked: bool = False  # drops made that the actor waits to hear of: the next poll says so
    task: asyncio.Task[None] | None = None


class SnapshotCopies:
    """One replica's copies, by session id."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.reader = uuid.uuid4().hex if max_bytes else None  # this replica, to the session actors
        self.counts = {"hits": 0, "misses": 0}
        self._max_bytes = max_bytes
        self._copies: OrderedDict[str, Copy] = OrderedDict()
        self._bytes = 0
        self._watches: dict[str, Watch] = {}
        # session -> [reads of it on their way, {actor: the latest drop of it the actor sent meanwhile}]
        self._fills: dict[str, tuple[list[int], dict[str, int]]] = {}

    async def read(self, session_id: str, client_id: str | None, fetch: Callable[[], Awaitable[Fetched]]) -> Copy:
        """The session's snapshot: this replica's copy if it holds a good one, else `fetch`ed (and kept if the
        session is at rest). A read naming a client goes to the session unless one is bound (it may bind it)."""
        if self.reader is None:  # keeping no copies
            return await self._fetch(session_id, fetch)
        copy = self._copies.get(session_id)
        if copy is not None and (client_id is None or copy.bound):
            watch = self._watches.get(copy.actor)
            if watch is not None and time.monotonic() < watch.lease_until:
                self.counts["hits"] += 1
                copy.used = time.monotonic()
                self._copies.move_to_end(session_id)
                watch.touched.add(session_id)
                return copy
        self.counts["misses"] += 1
        # Shielded: the actor counts the copy once it answers, so its answer is taken even if the request is gone.
        return await asyncio.shield(self._fetch(session_id, fetch))

    async def aclose(self, timeout: float = 1.0) -> None:
        """Stop keeping copies, and tell each actor that counts some that this replica left, so that no commit
        waits for it (a replica that stops without a word holds a commit up to its lease)."""
        watches = list(self._watches.values())
        self.close()
        leaving = asyncio.gather(*(w.handle.leave.remote(self.reader) for w in watches), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(leaving, timeout)

    def close(self) -> None:
        for watch in self._watches.values():
            if watch.task is not None:
                watch.task.cancel()
        self._watches.clear()
        self._copies.clear()
        self._bytes = 0

    # --- helpers ----------------------------------------------------------------------------------

    async def _fetch(self, session_id: str, fetch: Callable[[], Awaitable[Fetched]]) -> Copy:
        count, drops = self._fills.setdefault(session_id, ([0], {}))
        count[0] += 1
        sent = time.monotonic()
        try:
            fetched = await fetch()
        finally:
            count[0] -= 1
            if not count[0]:
                self._fills.pop(session_id, None)
        copy = Copy(fetched.body, etag_of(fetched.body), actor_key(fetched.handle), fetched.bound)
        if fetched.hold is not None:
            epoch, copy.number = fetched.hold
            watch = self._watch(copy.actor, fetched.handle, epoch, sent)
            # Not kept if a drop numbered above it came while it was on its way (it is news it does not hold), if
            # the actor has forgotten the epoch it was counted under, or if it took longer than a lease to come.
            if watch is not None and copy.number > drops.get(copy.actor, 0) and time.monotonic() < watch.lease_until:
                self._keep(session_id, copy, watch)
            elif watch is not None:
                self._let_go(watch, session_id, copy.number)
        return copy

    def _watch(self, key: str, handle: Any, epoch: int, sent: float) -> Watch | None:
        """The watch on the actor `key` that counted a copy under `epoch`; None if it has forgotten that epoch."""
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = Watch(handle, epoch)
        elif epoch < watch.epoch:
            return None
        elif epoch > watch.epoch:  # the actor forgot this replica: what it counted before is gone
            self._forget(watch, epoch)
        watch.lease_until = max(watch.lease_until, sent + LEASE_SECONDS)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(self._poll(key, watch), name=f"snapshot-copies:{key}")
        return watch

    def _keep(self, session_id: str, copy: Copy, watch: Watch) -> None:
        self._release(session_id)  # an older copy, counted by its actor (this one, or the one it moved from)
        self._copies[session_id] = copy
        self._bytes += len(copy.body)
        watch.sessions.add(session_id)
        while self._bytes > self._max_bytes and self._copies:
            self._release(next(iter(self._copies)))

    async def _poll(self, key: str, watch: Watch) -> None:
        while watch.sessions or watch.released or watch.unacked:
            sent = time.monotonic()
            touched, released = list(watch.touched), watch.released
            watch.touched, watch.released = set(), {}
            try:
                epoch, acked, drops = await watch.handle.watch.remote(
                    self.reader, watch.epoch, watch.acked, released, touched
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # the actor went, or fails: its copies can no longer be kept true
                self._drop_all(watch)
                break
            if epoch < watch.epoch:
                continue  # answered under an epoch already forgotten: the next poll asks under the new one
            if epoch > watch.epoch:
                self._forget(watch, epoch)
            for session_id, number in drops.items():
                self._drop(session_id, key, number)
            watch.acked, watch.unacked = acked, bool(drops)
            watch.lease_until = sent + LEASE_SECONDS
            unused = time.monotonic() - UNUSED_SECONDS
            for session_id in [s for s in watch.sessions if self._copies[s].used < unused]:
                self._release(session_id)
        if self._watches.get(key) is watch:
            del self._watches[key]

    def _drop(self, session_id: str, key: str, number: int) -> None:
        """The session changed in the actor `key` (or left it): its copy from there, and any read of it from there
        on its way, are out of date if that actor numbered them below the drop."""
        copy = self._copies.get(session_id)
        if copy is not None and copy.actor == key and copy.number < number:
            self._remove(session_id)
        if (fill := self._fills.get(session_id)) is not None:
            fill[1][key] = max(fill[1].get(key, 0), number)

    def _drop_all(self, watch: Watch) -> None:
        for session_id in list(watch.sessions):
            self._remove(session_id)

    def _forget(self, watch: Watch, epoch: int) -> None:
        """The actor forgot this replica (its lease ran out there): what it counted, under the older epoch, is gone."""
        self._drop_all(watch)
        watch.epoch, watch.acked, watch.released, watch.unacked = epoch, 0, {}, False

    def _release(self, session_id: str) -> None:
        """Let a copy go here (unread, for room, or for a newer one); its actor is told with the next poll."""
        copy = self._copies.get(session_id)
        self._remove(session_id)
        if copy is not None and (watch := self._watches.get(copy.actor)) is not None:
            self._let_go(watch, session_id, copy.number)

    @staticmethod
    def _let_go(watch: Watch, session_id: str, number: int) -> None:
        # By number: the actor un-counts it only if it handed out no newer copy of the session since.
        watch.released[session_id] = max(number, watch.released.get(session_id, 0))

    def _remove(self, session_id: str) -> None:
        copy = self._copies.pop(session_id, None)
        if copy is not None:
            self._bytes -= len(copy.body)
            if (watch := self._watches.get(copy.actor)) is not None:
                watch.sessions.discard(session_id)
