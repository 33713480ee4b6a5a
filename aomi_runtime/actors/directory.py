"""The session directory: one per App. It finds a session's actor in three tiers (live, rebuilt from the
store, new), places sessions in its session actors (`hosts`), keeps the live set bounded (by count, memory and
idle time), and sweeps: idle sessions out of memory, expired ones out of the database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import RayActorError

from ..agent.apps import AppSpec
from ..agent.errors import AomiError, AppMismatch
from ..agent.logs import configure_logging
from ..agent.stats import Histogram
from .deletes import Deletes
from .hosts import WARM_ACTORS, WORKER_PREFIX, Host, Hosts, discard
from .live_set import LiveSet
from .named import named_actor_names
from .named import named_actors as named_actors  # where its callers have imported it from
from .placement import SessionPlacement
from .sweep import SWEEP_SECONDS, sweep_forever, sweep_once
from .versions import Stamp, Versions, app_version, move_if_old

log = logging.getLogger(__name__)

# A session actor that does not say within this time which sessions it hosts is taken as broken (a blocked event
# loop, a lost node): it is stopped, and its sessions load again from the database when next asked for.
STALE_CHECK_SECONDS = 10.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class SessionDirectory:
    """Maps session ids to the session actors hosting them live, placing exactly one live copy of a session
    however many ask at once.

    Restarted after a crash, it finds the live sessions again by asking its App's named session actors which
    session each holds, so its calls are safe to retry.
    """

    def __init__(
        self,
        spec: AppSpec,
        store: Any,
        namespace: str,
        model_keys: Mapping[str, SecretStr],
        warm: int | None = None,
        sweep_seconds: float = SWEEP_SECONDS,
        placement: SessionPlacement | None = None,
        stamp: Stamp | None = None,
    ) -> None:
        configure_logging()
        self._spec = spec
        stamp = stamp or Stamp(0.0, app_version(spec))
        self._store = store
        self._namespace = namespace
        self._sweep_seconds = sweep_seconds
        self._placement = placement or SessionPlacement()
        capacity = spec.limits.sessions_per_actor or self._placement.sessions_per_actor
        self._hosts = Hosts(namespace, self._placement, capacity, spec, store, model_keys, stamp, warm)
        self._live = LiveSet(spec, self._placement, self._hosts)
        self._versions = Versions(spec.name, stamp, self._live, self._hosts)
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._deletes = Deletes(spec.name, store, self._live, self._loading)
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
        if stale is not None and (host := self._live.get(session_id)) is not None and host.key == stale:
            await self._drop_stale(session_id, host)
        handle = await self._find(session_id, create, public_key)
        deadline = asyncio.get_running_loop().time() + wait
        while handle is None and (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            appeared = self._appeared
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appeared.wait(), remaining)
            handle = self._handle(session_id)
        return handle

    def _handle(self, session_id: str) -> Any:
        host = self._live.get(session_id)
        return None if host is None else host.handle

    async def _drop_stale(self, session_id: str, host: Host) -> None:
        """A caller found the session's actor dead, or the session closing there: never two copies of a session.
        An actor that does not answer is lost with all its sessions; one that does releases this session."""
        try:
            hosted = await asyncio.wait_for(host.handle.held.remote(), STALE_CHECK_SECONDS)
        except Exception:
            self._live.lose(host)
            return
        if self._live.get(session_id) is host:
            del self._live[session_id]
            if session_id in hosted:
                await self._live.release(host, session_id)
            else:
                host.sessions.discard(session_id)

    async def _find(self, session_id: str, create: bool, public_key: str | None) -> Any:
        while True:
            if await self._deletes.waited(session_id):
                continue
            if (closing := self._live.closing.get(session_id)) is not None:
                await asyncio.shield(closing)
                continue
            if await move_if_old(self._live, self._hosts, session_id):
                continue  # it ran an older version: it loads in the newest
            if (handle := self._handle(session_id)) is not None:
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
        if not create:  # no place taken, no room made, for a session that is not there
            owner = await self._store.owner.remote(session_id)
            if owner is not None and owner != self._spec.name:
                raise AppMismatch.of(session_id, self._spec.name)
            if owner is None:
                return None
        self._counts["evicted"] += await self._live.make_room()
        host, outcome = await self._open(session_id, public_key)
        self._live[session_id] = host
        self._counts["misses"] += 1
        self._counts[outcome] += 1
        self._load_seconds.observe(time.perf_counter() - started)
        appeared, self._appeared = self._appeared, asyncio.Event()
        appeared.set()
        return host.handle

    async def _open(self, session_id: str, public_key: str | None) -> tuple[Host, str]:
        """Hand the session to a place in an actor; returns the actor and how the session was opened."""
        fence = self._live.fence(session_id)
        for attempt in itertools.count():
            host = await self._hosts.reserve()
            try:
                # The actor reads the session itself: its one read of the database, and no copy through here.
                outcome: str = await host.handle.open.remote(session_id, public_key, fence)
            except AomiError:
                self._hosts.unreserve(host)  # refused (another App's id): the place is still free
                raise
            except RayActorError:
                # An actor lost (with its node, removed or scaled down): pass it over, a bounded number of times.
                self._hosts.unreserve(host)
                self._live.lose(host)
                if attempt >= WARM_ACTORS:
                    raise
            except BaseException:
                self._hosts.unreserve(host)
                self._live.lose(host)  # it may hold the session half opened: it cannot be trusted
                raise
            else:
                self._hosts.placed(host, session_id)
                return host, outcome
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the sweep --------------------------------------------------------------------------------

    async def sweep(self) -> dict[str, int]:
        """Evict idle sessions and, past the memory budget, the least recently used; delete expired ones."""
        await self._start()
        return await sweep_once(self._spec, self._store, self._live, self.delete, self._counts)

    # --- start, recovery, and the rest ------------------------------------------------------------

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.create_task(self._recover())
        await asyncio.shield(self._started)

    async def _recover(self) -> None:
        """Find the App's session actors still alive (after a restart of this directory) and what they host."""
        named = await asyncio.to_thread(named_actor_names, self._namespace, WORKER_PREFIX)
        handles = [handle for _, handle in named]
        # One still waiting for a node (the directory died while it was placed) would never answer: bounded.
        timeout = self._placement.timeout_seconds
        hosted = await asyncio.gather(
            *(asyncio.wait_for(h.held.remote(), timeout) for h in handles), return_exceptions=True
        )
        for (name, handle), sessions in zip(named, hosted, strict=True):
            if isinstance(sessions, TimeoutError):
                discard(handle)
                continue
            if isinstance(sessions, BaseException):
                continue
            host = self._hosts.adopt(handle, name)
            for session_id in sessions:
                if session_id in self._live:  # never two live copies: the second one found lets its copy go
                    await self._live.release(host, session_id)
                else:
                    self._hosts.placed(host, session_id, reserved=False)
                    self._live[session_id] = host
        if handles:
            log.info(
                "app %s: found %d live sessions in %d session actors", self._spec.name, len(self._live), len(handles)
            )
        # Restarted by Ray, it was given the spec and placement it was first started with: a newer version's actors
        # say theirs.
        if (newest := await self._versions.recovered()) is not None:
            self._spec, self._placement = newest
        self._hosts.refill()
        self._sweeper = asyncio.create_task(sweep_forever(self._sweep_seconds, self.sweep, self._spec.name))
        self._versions.drain()

    async def deploy(
        self, spec: AppSpec, model_keys: Mapping[str, SecretStr], stamp: Stamp, placement: SessionPlacement
    ) -> str:
        """A deploy's ingress replica says its version (versions.py). Returns the version in use."""
        if self._versions.take(spec, model_keys, stamp, placement):  # before any await: calls after this see it
            self._spec, self._placement = spec, placement
        await self._start()  # recovered first: actors started before it would be found again as strangers
        self._hosts.refill()
        self._versions.drain()
        return self._versions.stamp.version

    async def delete(self, session_id: str) -> bool:
        """Stop the session if live, and delete it with its messages and events (deletes.py)."""
        await self._start()
        return await self._deletes.delete(session_id)

    async def copies_out(self, session_id: str) -> None:
        """The session's actor will hand out copies of its snapshots: if that actor is lost, fence the session."""
        self._live.copied.add(session_id)

    async def record_turn(self, seconds: float) -> None:
        self._turn_seconds.observe(seconds)

    async def stats(self) -> dict[str, Any]:
        """Counts and latencies, for /metrics."""
        # Recovered first: restarted by Ray, it knows neither its actors nor the version they run until it looks
        # (and its drain of an older version's actors resumes only then).
        await self._start()
        return {
            **self._counts,
            "live": len(self._live),
            "warm": self._hosts.free,
            "actors": len(self._hosts),
            "max_live": self._live.max_live,
            "version": self._versions.stamp.version,
            "old_actors": len(self._hosts.old()),  # of older versions, draining
            "load_seconds": self._load_seconds.snapshot(),
            "turn_seconds": self._turn_seconds.snapshot(),
        }

    async def close_all(self) -> int:
        """Release every live session (their state is stored). Returns how many there were."""
        await self._start()
        items = list(self._live.items())
        self._live.clear()
        await asyncio.gather(*(self._live.release(h, s) for s, h in items))
        return len(items)

    async def shutdown(self) -> None:
        """Stop every session actor."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._versions.stop()
        self._hosts.stop_refilling()
        await self.close_all()
        await self._hosts.retire_all()
