"""The hosts of an App's live sessions: its session actors, each with places for `capacity` sessions, and the
warm capacity kept ahead of need (free places in running actors, so that a new session or a cold load starts no
process while places remain). Held by the App's directory, in its process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.apps import AppSpec
from ..agent.errors import NoCapacity
from .placement import SessionPlacement
from .session import SessionActor
from .versions import Stamp

log = logging.getLogger(__name__)

WORKER_PREFIX = "session-actor:"
WARM_ACTORS = 2  # with one session per actor: blank actors kept started
REFILL_DELAY = 1.0
STOP_SECONDS = 2.0  # a healthy actor closes its providers in milliseconds; one that does not is killed all the same


def warm_places(capacity: int) -> int:
    """The free places kept ready: two blank actors with one session per actor; packed, half an actor's places,
    so that the next actor is started while the last one still has room for a burst."""
    return max(WARM_ACTORS, capacity // 2)


@dataclass(eq=False)
class Host:
    """A session actor as the directory sees it: its places, the sessions in them and those being opened."""

    handle: Any
    capacity: int
    stamp: Stamp | None = None  # the version it runs (None: not known, taken as older than any)
    sessions: set[str] = field(default_factory=set)
    opening: int = 0  # places promised to sessions being opened
    private_bytes: int = 0  # the actor's own memory, as it last reported it
    started: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    starting: asyncio.Task[None] | None = None  # what sets `started` for an actor this directory starts

    @property
    def key(self) -> str:
        return actor_key(self.handle)

    @property
    def taken(self) -> int:
        return len(self.sessions) + self.opening

    @property
    def free(self) -> int:
        return self.capacity - self.taken

    @property
    def ready(self) -> bool:
        return self.started.done() and self.started.exception() is None


class Hosts:
    """An App's session actors, by key. A session is placed in the least loaded actor of the App's version
    (`stamp`) with a free place; a new actor is started only when every one is full, and in the background when
    free places fall below the warm floor; an actor left with no session is stopped once the others' free places
    make the floor, and at once if it runs an older version (versions.py)."""

    def __init__(
        self,
        namespace: str,
        placement: SessionPlacement,
        capacity: int,
        spec: AppSpec,
        store: Any,
        model_keys: Mapping[str, SecretStr],
        stamp: Stamp,
        warm: int | None = None,
    ) -> None:
        self._namespace = namespace
        self.stamp = stamp
        self._warm = warm
        self._retiring: set[asyncio.Task[None]] = set()
        self._placement = placement
        self.capacity = capacity
        self.warm = warm_places(capacity) if warm is None else warm
        self._spec = spec
        self._store = store
        self._model_keys = model_keys
        self._hosts: dict[str, Host] = {}
        self._refilling: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._hosts)

    @property
    def free(self) -> int:
        """Free places in running actors of the App's version: the warm capacity."""
        return sum(h.free for h in self._hosts.values() if h.ready and self.is_current(h))

    def _free_ahead(self) -> int:
        return sum(h.free for h in self._hosts.values() if (not h.started.done() or h.ready) and self.is_current(h))

    # --- versions (versions.py) -------------------------------------------------------------------

    def is_current(self, host: Host) -> bool:
        return host.stamp is not None and host.stamp.version == self.stamp.version

    def is_old(self, host: Host) -> bool:
        """An actor of an older version, to drain. One of a newer version (found by a directory restarted with the
        spec it was first started with) is neither used nor drained until that version is deployed to it again."""
        return not self.is_current(host) and (host.stamp is None or host.stamp < self.stamp)

    def all(self) -> list[Host]:
        return list(self._hosts.values())

    def old(self) -> list[Host]:
        return [h for h in self._hosts.values() if self.is_old(h)]

    def upgrade(
        self, spec: AppSpec, model_keys: Mapping[str, SecretStr], stamp: Stamp, placement: SessionPlacement
    ) -> None:
        """Take a new version: new sessions go to actors of it (its warm ones started by the next `refill`), the
        others drain."""
        self._spec, self._model_keys, self.stamp, self._placement = spec, model_keys, stamp, placement
        self.capacity = spec.limits.sessions_per_actor or placement.sessions_per_actor
        self.warm = warm_places(self.capacity) if self._warm is None else self._warm
        for host in self._hosts.values():  # adopted after a restart with another version's capacity
            if self.is_current(host):
                host.capacity = self.capacity

    # --- placing sessions -------------------------------------------------------------------------

    async def reserve(self) -> Host:
        """A place for a session about to be opened: in the least loaded running actor with one, else in one
        starting, else in a new one (waited for). Release it with `placed` or `unreserve`.

        Raises:
            NoCapacity: no node had room for a new actor within the placement timeout.
        """
        with_room = [
            h for h in self._hosts.values() if h.free > 0 and (h.ready or not h.started.done()) and self.is_current(h)
        ]
        host = min(with_room, key=lambda h: (not h.ready, h.taken), default=None) or self._start()
        host.opening += 1
        try:
            await asyncio.shield(host.started)
        except BaseException:
            host.opening -= 1
            raise
        self.refill(REFILL_DELAY)
        return host

    def placed(self, host: Host, session_id: str, reserved: bool = True) -> None:
        host.opening -= reserved
        host.sessions.add(session_id)

    def unreserve(self, host: Host, spare: int = 0) -> None:
        host.opening -= 1
        self.trim(host, spare)

    def adopt(self, handle: Any, name: str) -> Host:
        """An actor found running (after this directory restarted), of the version its name says; its sessions are
        `placed` in it after."""
        token = name.removeprefix(WORKER_PREFIX).rpartition(":")[0]
        host = Host(handle, self.capacity, Stamp.parse(token))
        host.started.set_result(None)
        self._hosts[host.key] = host
        return host

    # --- releasing sessions and actors ------------------------------------------------------------

    async def release(
        self, host: Host, session_id: str, only_if_idle: bool = False, spare: int = 0, unless_running: bool = False
    ) -> bool:
        """Close a session (its state is stored), freeing its place; an actor left empty is stopped unless the
        warm floor needs it (counting `spare` places about to be taken). With `only_if_idle`, a session that
        became busy meanwhile stays; with `unless_running`, one that runs something (a stream watching it does
        not hold it). Returns whether it was released. Raises what the actor's call raised."""
        released = bool(await host.handle.release.remote(session_id, only_if_idle, unless_running))
        if released:
            host.sessions.discard(session_id)
            self.trim(host, spare)
        return released

    def trim(self, host: Host, spare: int = 0) -> None:
        """Stop an empty actor if the others' free places make the warm floor (plus `spare`); an empty one of an
        older version whatever the floor, letting it close its providers first."""
        if host.taken == 0 and host.started.done() and self.is_old(host) and self._hosts.get(host.key) is host:
            del self._hosts[host.key]
            stopping = asyncio.create_task(retire(host.handle))
            self._retiring.add(stopping)  # held: a task only weakly referenced may be collected mid-way
            stopping.add_done_callback(self._retiring.discard)
        elif host.taken == 0 and host.ready and self.free - host.free >= self.warm + spare:
            self.lose(host)

    def lose(self, host: Host) -> set[str]:
        """Forget an actor and kill it (dead, broken or not needed); returns the sessions it hosted."""
        if self._hosts.get(host.key) is host:
            del self._hosts[host.key]
        discard(host.handle)
        return host.sessions

    async def retire_all(self) -> None:
        """Stop every actor, as the App's actors stop: each closes what it holds first."""
        self.stop_refilling()
        hosts, self._hosts = list(self._hosts.values()), {}
        await asyncio.gather(*(retire(h.handle) for h in hosts))

    # --- starting actors --------------------------------------------------------------------------

    def _start(self) -> Host:
        # Named in the App's namespace, so that a restarted directory finds it again. On a cluster it reserves a
        # slot of the session resource for each of its places: autoscaling follows sessions, not processes.
        resources = {name: amount * self.capacity for name, amount in self._placement.resources.items()}
        handle = SessionActor.options(  # type: ignore[attr-defined]  # mypy ignores a class decorator's result: @ray.remote made an ActorClass
            name=f"{WORKER_PREFIX}{self.stamp.token}:{uuid.uuid4().hex}",
            namespace=self._namespace,
            lifetime="detached",
            resources=resources,
        ).remote(
            self._spec,
            self._store,
            self._model_keys,
            ray.get_runtime_context().current_actor,
            self.capacity,
            self._placement,
        )
        host = Host(handle, self.capacity, self.stamp)
        self._hosts[host.key] = host
        host.starting = asyncio.create_task(self._await_start(host))
        return host

    async def _await_start(self, host: Host) -> None:
        # On a cluster a new actor may wait for free session slots while the autoscaler adds a node: bounded, so
        # that a request gets an answer instead of hanging for as long as the cluster stays full.
        try:
            await asyncio.wait_for(host.handle.held.remote(), self._placement.timeout_seconds)
        except Exception as exc:
            self.lose(host)  # a pending actor is cancelled before it takes a slot
            if isinstance(exc, TimeoutError):
                exc = NoCapacity(
                    f"No node had room for another session of the App {self._spec.name!r} within "
                    f"{self._placement.timeout_seconds:g} s (each session asks for {self._placement.resources}); "
                    "the cluster may be adding a node: try again shortly."
                )
            host.started.set_exception(exc)
            host.started.exception()  # retrieved: those who wait for it get it raised; no one else logs it
        else:
            host.started.set_result(None)

    def refill(self, delay: float = 0.0) -> None:
        if self._refilling is None or self._refilling.done():
            self._refilling = asyncio.create_task(self._fill(delay))

    async def _fill(self, delay: float) -> None:
        # After a pause, so that a place freed meanwhile counts instead of a new process; then one start at a
        # time: starting processes is what a node does slowest, and requests come first.
        await asyncio.sleep(delay)
        while self._free_ahead() < self.warm:
            host = self._start()
            try:
                await asyncio.shield(host.started)
            except NoCapacity as exc:
                log.warning("app %s: no warm session actor: %s", self._spec.name, exc)
                return
            except Exception:
                log.exception("app %s: could not start a warm session actor", self._spec.name)
                return

    def stop_refilling(self) -> None:
        if self._refilling is not None:
            self._refilling.cancel()


async def retire(handle: Any) -> None:
    """Stop a healthy session actor for good, as the App's actors stop: it closes what it holds (its sessions,
    its model providers), then is killed; killed all the same if it does not answer within `STOP_SECONDS`."""
    try:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(handle.stop.remote(), STOP_SECONDS)
    finally:
        discard(handle)


def discard(handle: Any) -> None:
    """Stop a session actor for good (it is not restarted)."""
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def actor_key(handle: Any) -> str:
    """An actor's id, to name it in a call without passing its handle."""
    return str(handle._actor_id.hex())
