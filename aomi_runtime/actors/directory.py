"""The session directory: one per App. It finds a session's actor in three tiers (live, rebuilt from the
store, new), keeps the live set bounded (by count, memory and idle time), keeps a few blank session actors
warm so that a cold load starts no process, and sweeps: idle sessions out of memory, expired ones out of
the database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import RayActorError

from ..agent.apps import AppSpec
from ..agent.errors import AomiError, AppMismatch, LimitReached
from ..agent.logs import configure_logging
from ..agent.records import utcnow
from ..agent.stats import Histogram
from .live_set import LiveSet
from .placement import SessionPlacement
from .warm_pool import WARM_ACTORS, WORKER_PREFIX, WarmPool, discard

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
EXPIRED_PER_SWEEP = 500


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class SessionDirectory:
    """Maps session ids to live session actors, making exactly one actor per session however many ask at once.

    Restarted after a crash, it finds the live sessions again by asking its App's named session actors which
    session each holds, so its calls are safe to retry.
    """

    def __init__(
        self,
        spec: AppSpec,
        store: Any,
        namespace: str,
        model_keys: Mapping[str, SecretStr],
        warm: int = WARM_ACTORS,
        sweep_seconds: float = SWEEP_SECONDS,
        placement: SessionPlacement | None = None,
    ) -> None:
        configure_logging()
        self._spec = spec
        self._store = store
        self._namespace = namespace
        self._sweep_seconds = sweep_seconds
        self._placement = placement or SessionPlacement()
        self._pool = WarmPool(namespace, self._placement, warm, spec, store, model_keys)
        self._live = LiveSet(spec, self._placement, self._pool)
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._appeared = asyncio.Event()
        self._started: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._counts = {"created": 0, "loaded": 0, "evicted": 0, "expired": 0, "hits": 0, "misses": 0}
        self._load_seconds = Histogram()
        self._turn_seconds = Histogram()

    # --- finding sessions -----------------------------------------------------------------------

    async def get(
        self, session_id: str, create: bool, public_key: str | None = None, stale: str | None = None, wait: float = 0.0
    ) -> Any:
        """The session's live actor: tier 1 live, tier 2 rebuilt from the store, tier 3 new (if `create`).

        `stale` is the `actor_key` of a handle the caller found dead or closing: it is dropped before looking
        again. (A key, not the handle: a handle in a call's arguments is a reference Ray counts as borrowed, and
        under load Ray 2.60 failed a reference-count check on those and crashed this actor.)
        With `wait`, a session that does not exist yet is waited for that many seconds. None if not found.
        """
        await self._start()
        live = self._live.get(session_id)
        if stale is not None and live is not None and actor_key(live) == stale:
            del self._live[session_id]
            discard(live)  # dead, or closing: never two actors writing one session
        handle = await self._find(session_id, create, public_key)
        deadline = asyncio.get_running_loop().time() + wait
        while handle is None and (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            appeared = self._appeared
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appeared.wait(), remaining)
            handle = self._live.get(session_id)
        return handle

    async def _find(self, session_id: str, create: bool, public_key: str | None) -> Any:
        while True:
            if (handle := self._live.get(session_id)) is not None:
                self._counts["hits"] += 1
                return handle
            loading = self._loading.get(session_id)
            if loading is None:
                break
            handle = await asyncio.shield(loading)
            if handle is not None or not create:
                return handle
        future = self._loading[session_id] = asyncio.get_running_loop().create_future()
        try:
            handle = await self._load(session_id, create, public_key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those who await it get it raised; no one else logs it
            raise
        else:
            future.set_result(handle)
            return handle
        finally:
            del self._loading[session_id]

    async def _load(self, session_id: str, create: bool, public_key: str | None) -> Any:
        started = time.perf_counter()
        owner = await self._store.owner.remote(session_id)
        if owner is not None and owner != self._spec.name:
            raise AppMismatch.of(session_id, self._spec.name)
        if owner is None and not create:
            return None  # no actor taken, no room made, for a session that is not there
        most = self._spec.limits.max_sessions
        # A soft bound: sessions created at the same moment may pass it by a few.
        if owner is None and most is not None and await self._store.count.remote(self._spec.name) >= most:
            raise LimitReached(
                f"The App {self._spec.name!r} holds its limit of {most} sessions: delete some, or raise its "
                "limits.max_sessions."
            )
        self._counts["evicted"] += await self._live.make_room()
        worker, outcome = await self._open(session_id, owner is not None, public_key)
        self._live[session_id] = worker
        self._counts["misses"] += 1
        self._counts[outcome] += 1
        self._load_seconds.observe(time.perf_counter() - started)
        appeared, self._appeared = self._appeared, asyncio.Event()
        appeared.set()
        return worker

    async def _open(self, session_id: str, stored: bool, public_key: str | None) -> tuple[Any, str]:
        """Hand the session to a warm actor (or a new one); returns the actor and how the session was opened."""
        for attempt in itertools.count():
            worker = await self._pool.take()
            try:
                # The actor reads the session itself: its one read of the database, and no copy through here.
                return worker, await worker.open.remote(session_id, stored, public_key)
            except AomiError:
                self._pool.keep(worker)  # refused (another App's id): the actor is still blank
                raise
            except RayActorError:
                # A warm actor lost with its node (removed, or scaled down): pass it over, a bounded number of times.
                discard(worker)
                if attempt >= self._pool.warm:
                    raise
            except BaseException:
                discard(worker)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the sweep --------------------------------------------------------------------------------

    async def sweep(self) -> dict[str, int]:
        """Evict idle sessions and, past the memory budget, the least recently used; delete expired ones."""
        await self._start()
        stats = await self._live.stats()
        idle_after = self._spec.limits.idle_seconds
        idle = [s for s in stats if not s[2]["busy"] and s[2]["idle_seconds"] > idle_after]
        evicted_idle = await self._live.evict(idle)
        self._counts["evicted"] += evicted_idle
        evicted_memory = await self._live.evict(self._live.over_memory([s for s in stats if s not in idle]))
        self._counts["evicted"] += evicted_memory
        expired = 0
        if self._spec.limits.retention_days is not None:
            before = utcnow() - timedelta(days=self._spec.limits.retention_days)
            for session_id in await self._store.stale.remote(self._spec.name, before, EXPIRED_PER_SWEEP):
                record = await self._store.get.remote(self._spec.name, session_id)
                if session_id in self._live or record is None or record.updated_at >= before:
                    continue  # came back since it was listed
                expired += await self.delete(session_id)
            self._counts["expired"] += expired
        report = {
            "evicted_idle": evicted_idle,
            "evicted_memory": evicted_memory,
            "expired": expired,
            "live": len(self._live),
        }
        if evicted_idle or evicted_memory or expired:
            log.info("app %s sweep: %s", self._spec.name, " ".join(f"{k}={v}" for k, v in report.items()))
        return report

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("app %s: sweep failed", self._spec.name)

    # --- start, recovery, and the rest ------------------------------------------------------------

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self._recover())
        await asyncio.shield(self._started)

    async def _recover(self) -> None:
        """Find the App's session actors still alive (after a restart of this directory) and what they hold."""
        workers = await asyncio.to_thread(named_actors, self._namespace, WORKER_PREFIX)
        # One still waiting for a node (the directory died while it was placed) would never answer: bounded.
        timeout = self._placement.timeout_seconds
        held = await asyncio.gather(
            *(asyncio.wait_for(w.held.remote(), timeout) for w in workers), return_exceptions=True
        )
        for worker, session_id in zip(workers, held, strict=True):
            if isinstance(session_id, TimeoutError):
                discard(worker)
                continue
            if isinstance(session_id, BaseException):
                continue
            if session_id is None:
                self._pool.keep(worker)
            elif session_id in self._live:
                discard(worker)
            else:
                self._live[session_id] = worker
        if workers:
            log.info(
                "app %s: found %d live sessions and %d warm actors", self._spec.name, len(self._live), len(self._pool)
            )
        self._pool.refill()
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def delete(self, session_id: str) -> bool:
        """Stop the session if live, and delete it with its messages and events."""
        await self._start()
        handle = self._live.pop(session_id, None)
        if handle is not None:
            await self._pool.recycle(handle, session_id)
        deleted: bool = await self._store.delete.remote(self._spec.name, session_id)
        return deleted or handle is not None

    async def record_turn(self, seconds: float) -> None:
        self._turn_seconds.observe(seconds)

    async def stats(self) -> dict[str, Any]:
        """Counts and latencies, for /metrics."""
        return {
            **self._counts,
            "live": len(self._live),
            "warm": len(self._pool),
            "max_live": self._live.max_live,
            "load_seconds": self._load_seconds.snapshot(),
            "turn_seconds": self._turn_seconds.snapshot(),
        }

    async def close_all(self) -> int:
        """Release every live session (their state is stored). Returns how many there were."""
        await self._start()
        items = list(self._live.items())
        self._live.clear()
        await asyncio.gather(*(self._pool.recycle(h, s) for s, h in items))
        return len(items)

    async def shutdown(self) -> None:
        """Stop every session actor, live and warm."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._pool.stop_refilling()
        await self.close_all()
        await self._pool.retire_all()


def actor_key(handle: Any) -> str:
    """An actor's id, to name it in a call without passing its handle."""
    return str(handle._actor_id.hex())


def named_actors(namespace: str, prefix: str = "") -> list[Any]:
    """Handles of the live named actors of a namespace whose names start with `prefix` (a blocking call)."""
    return [
        ray.get_actor(a["name"], namespace=namespace)
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].startswith(prefix)
    ]
