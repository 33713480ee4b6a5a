"""The live set: an App's sessions held by session actors, bounded by count and by memory, whose least recently
used idle sessions are evicted to stay within the bounds."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ..agent.apps import AppSpec
from .placement import SessionPlacement
from .warm_pool import WarmPool, discard

log = logging.getLogger(__name__)

SESSIONS_PER_CPU = 50  # an idle session actor takes ~2.8 ms of CPU a second and wakes 100 times (bench/idle.py)
MEMORY_SHARE = 0.25  # of the node's memory, for one App's live sessions, unless the App says otherwise

Stat = tuple[str, Any, dict[str, Any]]  # a session id, its actor, and what the actor reports of it


def _node_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


class LiveSet(dict[str, Any]):
    """Session ids to the actors holding them live, with the bounds of their number and memory; an evicted
    session's actor goes back to the warm pool."""

    def __init__(self, spec: AppSpec, placement: SessionPlacement, pool: WarmPool) -> None:
        super().__init__()
        self._pool = pool
        limits = spec.limits
        self.max_live: int | None = limits.max_live_sessions
        self.max_bytes: int | None = (limits.max_live_memory_mb << 20) if limits.max_live_memory_mb else None
        if not placement.resources:
            # One machine: the sessions share this node, so its CPUs and memory bound them.
            self.max_live = self.max_live or SESSIONS_PER_CPU * (os.cpu_count() or 1)
            self.max_bytes = self.max_bytes or int(_node_memory_bytes() * MEMORY_SHARE)
        elif self.max_live is None:
            # A cluster: the sessions spread over nodes whose slots bound each node, and this node's size says
            # nothing about the cluster's. Only the App's own limits apply; without one, a full cluster makes new
            # sessions wait for a slot (and fail with NoCapacity) instead of evicting the least recently used.
            log.warning(
                "app %s: session actors ask for %s but limits.max_live_sessions is unset: set it to this App's "
                "share of the session slots at the cluster's largest size",
                spec.name,
                placement.resources,
            )

    async def stats(self) -> list[Stat]:
        items = list(self.items())
        results = await asyncio.gather(*(h.stats.remote() for _, h in items), return_exceptions=True)
        found = []
        for (session_id, handle), stats in zip(items, results, strict=True):
            if isinstance(stats, BaseException) or stats.get("session_id") != session_id:
                if self.get(session_id) == handle:  # dead, broken or handed on: forget it, and stop it
                    del self[session_id]
                    discard(handle)
                continue
            found.append((session_id, handle, stats))
        return found

    async def make_room(self) -> int:
        """Before a session comes in: evict the least recently used idle ones while the live set is full.
        Returns how many were evicted."""
        if self.max_live is None or len(self) < self.max_live:
            return 0
        stats = await self.stats()
        excess = len(self) + 1 - self.max_live
        chosen = [s for s in sorted(stats, key=lambda s: -s[2]["idle_seconds"]) if not s[2]["busy"]][:excess]
        # The session coming in takes a warm actor next: the evicted one is kept for that, not stopped and
        # replaced by a new process a second later.
        return await self.evict(chosen, spare=1)

    async def evict(self, chosen: list[Stat], spare: int = 0) -> int:
        evicted = 0
        for session_id, handle, _ in chosen:
            if self.get(session_id) == handle:
                del self[session_id]
                if await self._pool.recycle(handle, session_id, only_if_idle=True, spare=spare):
                    evicted += 1
                elif session_id not in self:
                    self[session_id] = handle  # it became busy since it was chosen: it stays
        return evicted

    def over_memory(self, stats: list[Stat]) -> list[Stat]:
        """Of `stats`, the least recently used idle sessions to evict for the rest to fit the memory budget."""
        rest = sorted(stats, key=lambda s: -s[2]["idle_seconds"])
        used = sum(s[2]["private_bytes"] for s in rest)
        over: list[Stat] = []
        for s in rest:
            if self.max_bytes is None or used <= self.max_bytes:
                break
            if not s[2]["busy"]:
                over.append(s)
                used -= s[2]["private_bytes"]
        return over
