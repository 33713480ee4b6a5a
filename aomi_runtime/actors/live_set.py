"""The live set: an App's sessions hosted by its session actors, bounded by count and by memory, whose least
recently used idle sessions are evicted to stay within the bounds."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from ..agent.apps import AppSpec
from .hosts import Host, Hosts
from .placement import SessionPlacement
from .readers import LEASE_SECONDS

log = logging.getLogger(__name__)

# An idle session actor (a process) takes ~2.8 ms of CPU a second and wakes 100 times (bench/idle.py): the
# processes a core carries. A packed actor's sessions add no wake-ups of their own.
ACTORS_PER_CPU = 50
MEMORY_SHARE = 0.25  # of the node's memory, for one App's live sessions, unless the App says otherwise

Stat = tuple[str, Host, dict[str, Any]]  # a session id, its host, and what the host reports of it


def _node_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


class LiveSet(dict[str, Host]):
    """Session ids to the actors hosting them, with the bounds of their number and memory; an evicted session's
    place is freed for the next."""

    def __init__(self, spec: AppSpec, placement: SessionPlacement, hosts: Hosts) -> None:
        super().__init__()
        self._hosts = hosts
        # Sessions being released, done when their last state is stored: one is opened again only after that,
        # never beside its closing copy.
        self.closing: dict[str, asyncio.Future[None]] = {}
        # Sessions of which replicas may hold copies of snapshots (their actors said so before handing one out),
        # and, of those whose actor was lost, until when their next actor holds back commits: replicas may serve
        # the lost actor's copies until their lease runs out (actors/readers.py).
        self.copied: set[str] = set()
        self.fenced: dict[str, float] = {}
        self.set_bounds(spec, placement)

    def set_bounds(self, spec: AppSpec, placement: SessionPlacement) -> None:
        """The bounds of the live set, from the App's limits (those of its newest version)."""
        limits = spec.limits
        self.max_live: int | None = limits.max_live_sessions
        self.max_bytes: int | None = (limits.max_live_memory_mb << 20) if limits.max_live_memory_mb else None
        if not placement.resources:
            # One machine: the sessions share this node, so its CPUs and memory bound them.
            self.max_live = self.max_live or ACTORS_PER_CPU * (os.cpu_count() or 1) * self._hosts.capacity
            self.max_bytes = self.max_bytes or int(_node_memory_bytes() * MEMORY_SHARE)
        elif self.max_live is None:
            # A cluster: the sessions spread over nodes whose slots bound each node, and this node's size says
            # nothing about the cluster's. Only the App's own limits apply; without one, a full cluster makes new
            # sessions wait for a slot (and fail with NoCapacity) instead of evicting the least recently used.
            log.warning(
                "app %s: each session asks for %s but limits.max_live_sessions is unset: set it to this App's "
                "share of the session slots at the cluster's largest size",
                spec.name,
                placement.resources,
            )

    def lose(self, host: Host) -> None:
        """An actor died or broke: forget it and every session it hosted (they load again when next asked for)."""
        now = time.monotonic()
        self.fenced = {s: until for s, until in self.fenced.items() if until > now}
        for session_id in self._hosts.lose(host):
            if session_id in self.copied:
                self.copied.discard(session_id)
                self.fenced[session_id] = now + LEASE_SECONDS
            if self.get(session_id) is host:
                del self[session_id]

    def fence(self, session_id: str) -> float:
        """How long the session's next actor holds back its commits, in seconds (0 for most)."""
        return max(0.0, self.fenced.pop(session_id, 0.0) - time.monotonic())

    async def release(
        self, host: Host, session_id: str, only_if_idle: bool = False, spare: int = 0, unless_running: bool = False
    ) -> bool:
        """Release a session from its actor (see `Hosts.release`); an actor that fails to is lost, with its
        sessions (the session is released all the same: its state is stored)."""
        closed = self.closing[session_id] = asyncio.get_running_loop().create_future()
        try:
            released = await self._hosts.release(host, session_id, only_if_idle, spare, unless_running)
            if released:  # its copies were dropped as it left
                self.copied.discard(session_id)
            return released
        except Exception:  # dead, or broken: none of its sessions can be trusted
            self.lose(host)
            return True
        finally:
            closed.set_result(None)
            if self.closing.get(session_id) is closed:
                del self.closing[session_id]

    async def stats(self, of: list[Host] | None = None) -> list[Stat]:
        """Each live session's idleness (and, kept on each host, its actor's private memory), of the hosts `of`
        (by default, all)."""
        hosts = list({id(h): h for h in self.values()}.values()) if of is None else of
        asked = [set(h.sessions) for h in hosts]  # a session placed while the actors answer is not in their answer
        results = await asyncio.gather(*(h.handle.stats.remote() for h in hosts), return_exceptions=True)
        found: list[Stat] = []
        for host, placed, stats in zip(hosts, asked, results, strict=True):
            if isinstance(stats, BaseException):
                self.lose(host)
                continue
            sessions: dict[str, dict[str, Any]] = stats["sessions"]
            for session_id in placed - sessions.keys():  # not there, though placed there before it was asked
                host.sessions.discard(session_id)
                if self.get(session_id) is host:
                    del self[session_id]
            host.private_bytes = stats["private_bytes"]
            found += [(s, host, st) for s, st in sessions.items() if self.get(s) is host]
        return found

    async def make_room(self) -> int:
        """Before a session comes in: evict the least recently used idle ones while the live set is full.
        Returns how many were evicted."""
        if self.max_live is None or len(self) < self.max_live:
            return 0
        stats = await self.stats()
        excess = len(self) + 1 - self.max_live
        chosen = [s for s in sorted(stats, key=lambda s: -s[2]["idle_seconds"]) if not s[2]["busy"]][:excess]
        # The session coming in takes a place next: the one freed is kept for it, its actor not stopped and
        # replaced by a new process a second later.
        return await self.evict(chosen, spare=1)

    async def evict(self, chosen: list[Stat], spare: int = 0, unless_running: bool = False) -> int:
        """Release the `chosen` sessions unless busy by now (or, `unless_running`, running something); returns how
        many went."""
        evicted = 0
        for session_id, host, _ in chosen:
            if self.get(session_id) is host:
                del self[session_id]
                idle = not unless_running
                if await self.release(host, session_id, idle, spare, unless_running):
                    evicted += 1
                elif session_id not in self:
                    self[session_id] = host  # it became busy since it was chosen: it stays
        return evicted

    def over_memory(self, stats: list[Stat]) -> list[Stat]:
        """Of `stats`, the sessions to evict for the rest to fit the memory budget: every session of the least
        recently used actors whose sessions are all idle, until the other actors fit. Whole actors, because memory
        comes back only when a process stops: a process does not give back what its evicted sessions used."""
        if self.max_bytes is None:
            return []
        by_host: dict[int, list[Stat]] = {}
        for stat in stats:
            by_host.setdefault(id(stat[1]), []).append(stat)
        # Least recently used first: the host whose most recently used session has been idle longest.
        hosts = sorted(by_host.values(), key=lambda ss: -min(s[2]["idle_seconds"] for s in ss))
        used = sum(ss[0][1].private_bytes for ss in hosts)
        over: list[Stat] = []
        for sessions in hosts:
            if used <= self.max_bytes:
                break
            if not any(s[2]["busy"] for s in sessions):
                over += sessions
                used -= sessions[0][1].private_bytes
        return over
