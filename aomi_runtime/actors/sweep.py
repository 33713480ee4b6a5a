"""The sweep an App's directory runs on its timer: idle sessions out of memory, then past the memory budget the
least recently used; and sessions past the App's retention out of the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ..agent.apps import AppSpec
from ..agent.records import utcnow
from .live_set import LiveSet

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
EXPIRED_PER_SWEEP = 500


async def evict_unused(live: LiveSet, idle_seconds: float) -> tuple[int, int]:
    """Evict the sessions idle longer than `idle_seconds`, then the least recently used idle ones while the live
    set is over its memory budget. Returns how many went for each reason."""
    stats = await live.stats()
    idle = [s for s in stats if not s[2]["busy"] and s[2]["idle_seconds"] > idle_seconds]
    evicted_idle = await live.evict(idle)
    evicted_memory = await live.evict(live.over_memory([s for s in stats if s not in idle]))
    return evicted_idle, evicted_memory


async def expire_old(spec: AppSpec, store: Any, live: LiveSet, delete: Callable[[str], Awaitable[bool]]) -> int:
    """Delete (with `delete`) the App's sessions last updated before its retention, a batch at a time; returns
    how many were deleted."""
    if spec.limits.retention_days is None:
        return 0
    before = utcnow() - timedelta(days=spec.limits.retention_days)
    expired = 0
    for session_id in await store.stale.remote(spec.name, before, EXPIRED_PER_SWEEP):
        record = await store.get.remote(spec.name, session_id)
        if session_id in live or record is None or record.updated_at >= before:
            continue  # came back since it was listed
        expired += await delete(session_id)
    return expired


async def sweep_once(
    spec: AppSpec, store: Any, live: LiveSet, delete: Callable[[str], Awaitable[bool]], counts: dict[str, int]
) -> dict[str, int]:
    """Evict idle sessions and, past the memory budget, the least recently used; delete (with `delete`) expired
    ones. Adds to the directory's `counts`; returns the sweep's report."""
    evicted_idle, evicted_memory = await evict_unused(live, spec.limits.idle_seconds)
    expired = await expire_old(spec, store, live, delete)
    counts["evicted"] += evicted_idle + evicted_memory
    counts["expired"] += expired
    report = {"evicted_idle": evicted_idle, "evicted_memory": evicted_memory, "expired": expired, "live": len(live)}
    if evicted_idle or evicted_memory or expired:
        log.info("app %s sweep: %s", spec.name, " ".join(f"{k}={v}" for k, v in report.items()))
    return report


async def sweep_forever(seconds: float, sweep: Callable[[], Awaitable[object]], app: str) -> None:
    """Run `sweep` every `seconds` until cancelled; a sweep that fails is logged, and the next one runs."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await sweep()
        except Exception:
            log.exception("app %s: sweep failed", app)
