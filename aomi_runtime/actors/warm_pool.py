"""The warm pool: a few blank session actors an App's directory keeps started, so that a cold load starts no
process, and takes back when their sessions are released."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.apps import AppSpec
from ..agent.errors import NoCapacity
from .placement import SessionPlacement
from .session import SessionActor

log = logging.getLogger(__name__)

WORKER_PREFIX = "session-actor:"
WARM_ACTORS = 2
REFILL_DELAY = 1.0
STOP_SECONDS = 2.0  # a healthy actor closes its providers in milliseconds; one that does not is killed all the same


class WarmPool:
    """Blank session actors of one App, started ahead of need; held by the App's directory, in its process."""

    def __init__(
        self,
        namespace: str,
        placement: SessionPlacement,
        warm: int,
        spec: AppSpec,
        store: Any,
        model_keys: Mapping[str, SecretStr],
    ) -> None:
        self._namespace = namespace
        self._placement = placement
        self.warm = warm
        self._spec = spec
        self._store = store
        self._model_keys = model_keys
        self._pool: list[Any] = []
        self._refilling: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pool)

    async def take(self) -> Any:
        worker = self._pool.pop() if self._pool else await self._new_worker()
        self.refill(REFILL_DELAY)
        return worker

    async def _new_worker(self) -> Any:
        # Named in the App's namespace, so that a restarted directory finds it again.
        worker = SessionActor.options(  # type: ignore[attr-defined]  # mypy ignores a class decorator's result: @ray.remote made an ActorClass
            name=f"{WORKER_PREFIX}{uuid.uuid4().hex}",
            namespace=self._namespace,
            lifetime="detached",
            resources=dict(self._placement.resources),
        ).remote(self._spec, self._store, self._model_keys, ray.get_runtime_context().current_actor)
        try:
            if not await self._started_in_time(worker):
                raise NoCapacity(
                    f"No node had room for another session of the App {self._spec.name!r} within "
                    f"{self._placement.timeout_seconds:g} s (each asks for {self._placement.resources}); "
                    "the cluster may be adding a node: try again shortly."
                )
        except BaseException:
            discard(worker)  # a pending actor is cancelled before it takes a slot
            raise
        return worker

    async def _started_in_time(self, worker: Any) -> bool:
        # On a cluster a new actor may wait for a free session slot while the autoscaler adds a node: bounded, so
        # that a request gets an answer instead of hanging for as long as the cluster stays full.
        try:
            await asyncio.wait_for(worker.held.remote(), self._placement.timeout_seconds)
        except TimeoutError:
            return False
        return True

    def refill(self, delay: float = 0.0) -> None:
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._fill(delay))

    async def _fill(self, delay: float) -> None:
        # After a pause, so that an actor released meanwhile fills the pool instead of a new process; then one
        # start at a time: starting processes is what a node does slowest, and requests come first.
        await asyncio.sleep(delay)
        while len(self._pool) < self.warm:
            try:
                self._pool.append(await self._new_worker())
            except NoCapacity as exc:
                log.warning("app %s: no warm session actor: %s", self._spec.name, exc)
                return
            except Exception:
                log.exception("app %s: could not start a warm session actor", self._spec.name)
                return

    def keep(self, worker: Any, spare: int = 0) -> None:
        """Keep a blank actor warm, or kill it if the pool is full (counting `spare` actors about to be taken)."""
        if len(self._pool) < self.warm + spare:
            self._pool.append(worker)
        else:
            discard(worker)

    async def recycle(self, worker: Any, session_id: str, only_if_idle: bool = False, spare: int = 0) -> bool:
        """Close a session and keep its actor warm for the next one (or stop it if the pool is full, counting
        `spare` actors about to be taken). With `only_if_idle`, a session that became busy meanwhile stays;
        returns whether it was released."""
        try:
            released = await worker.release.remote(session_id, only_if_idle)
        except Exception:  # dead, or the session already gone: the actor cannot be trusted blank
            discard(worker)
            return True
        if released:
            self.keep(worker, spare)
        return bool(released)

    def stop_refilling(self) -> None:
        if self._refilling is not None:
            self._refilling.cancel()

    async def retire_all(self) -> None:
        pool, self._pool = self._pool, []
        await asyncio.gather(*(retire(worker) for worker in pool))


async def retire(worker: Any) -> None:
    """Stop a healthy session actor for good, as the App's actors stop: it closes what it holds (its session, its
    model providers), then is killed; killed all the same if it does not answer within `STOP_SECONDS`."""
    try:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.stop.remote(), STOP_SECONDS)
    finally:
        discard(worker)


def discard(worker: Any) -> None:
    """Stop a session actor for good (it is not restarted)."""
    with contextlib.suppress(Exception):
        ray.kill(worker, no_restart=True)
