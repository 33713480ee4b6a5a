"""Versions of an App (docs/lifecycle.md#upgrades): what identifies the code its session actors run, which of two
deploys is the newer, and the drain that moves the sessions of an older version's actors to the newest one's.

The App's directory outlives versions: it alone places sessions, so it alone can keep a session in one place while
two versions run side by side. A deploy tells it the new version (`SessionDirectory.deploy`); from then on it
places sessions only in actors of that version, and drains the others: an idle session is released (its state is
stored) and loads in a new actor at its next request; a running one (a turn, a title, a background call) finishes
where it runs and is released once it stops; an actor left empty is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ..agent.apps import AppSpec
    from .hosts import Host, Hosts
    from .live_set import LiveSet
    from .placement import SessionPlacement

log = logging.getLogger(__name__)

DRAIN_SECONDS = 0.5  # how soon a session of an old version is released once its turn ends


@dataclass(frozen=True, order=True)
class Stamp:
    """A version of an App as deployed. Ordered by when its deploy was built, so that a replica of the previous
    deploy, still running during a rolling update, never takes the App back to its version; a rollback is a new
    deploy, hence newer. `deployed_at` 0 is a runtime that deploys nothing (a driver, a notebook's in-process
    client): it never replaces a deployed version."""

    deployed_at: float
    version: str

    @property
    def token(self) -> str:
        """The stamp in a session actor's name, for a restarted directory to tell which version the actor runs."""
        return f"{round(self.deployed_at * 1000)}-{self.version}"

    @classmethod
    def parse(cls, token: str) -> Stamp | None:
        millis, _, version = token.partition("-")
        return cls(int(millis) / 1000, version) if millis.isdigit() and version else None


def app_version(
    spec: AppSpec,
    label: str | None = None,
    placement: SessionPlacement | None = None,
    model_keys: Mapping[str, SecretStr] | None = None,
) -> str:
    """An App's version: a digest of its spec as built (tools, models, prompt, limits), where its sessions run, its
    provider keys, the package's version and the operator's `label` (AOMI_VERSION), which names code the spec
    cannot see (a tool module's new release)."""
    from .. import __version__

    # A rotated key is a new version: an unchanged one would keep its actors, and start new ones, with the old key.
    # Each key only as a digest of its own, in a digest: nothing of it reaches an actor's name or a log.
    keys = sorted(
        (env, hashlib.sha256(key.get_secret_value().encode()).hexdigest()) for env, key in (model_keys or {}).items()
    )
    text = "\n".join((spec.model_dump_json(), repr(placement), repr(keys), __version__, label or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


async def drain(live: LiveSet, hosts: Hosts) -> bool:
    """One pass of the drain: release every session of an older version's actor that runs nothing (a stream
    watching it moves with it: its next wait finds the session in its new place), and stop those actors left
    empty. Returns whether older actors remain."""
    old = hosts.old()
    if not old:
        return False
    stats = await live.stats(old)
    await live.evict([s for s in stats if not s[2]["running"]], unless_running=True)
    for host in old:
        hosts.trim(host)
    return bool(hosts.old())


async def move_if_old(live: LiveSet, hosts: Hosts, session_id: str) -> bool:
    """A session asked for while it lives in an older version's actor: released there if it runs nothing, for the
    request to load it in the new version. Returns whether it was released."""
    host: Host | None = live.get(session_id)
    if host is None or not hosts.is_old(host):
        return False
    return await live.evict([(session_id, host, {})], unless_running=True) > 0


class Versions:
    """An App's version as its directory knows it, and the drain of the older versions' actors."""

    def __init__(self, app: str, stamp: Stamp, live: LiveSet, hosts: Hosts) -> None:
        self.stamp = stamp
        self._live = live
        self._hosts = hosts
        self._drain = Drain(app, live, hosts)

    def take(
        self, spec: AppSpec, model_keys: Mapping[str, SecretStr], stamp: Stamp, placement: SessionPlacement
    ) -> bool:
        """A deploy's version: taken if newer (placements go to its actors from now on, the older ones drain), left
        if older (a replica of the previous deploy). Returns whether the App's spec is now `spec`."""
        if stamp.version == self.stamp.version:
            self.stamp = self._hosts.stamp = max(stamp, self.stamp)
            return False
        if stamp < self.stamp:
            # Said once per replica as it starts: a late replica of an earlier deploy, or a deploy built on a
            # machine whose clock is behind the previous one's, which would otherwise change nothing unseen.
            log.warning(
                "app %s: version %s (a deploy built at %.3f) left: the version running, %s, was built later (%.3f)",
                spec.name,
                stamp.version,
                stamp.deployed_at,
                self.stamp.version,
                self.stamp.deployed_at,
            )
            return False
        log.info("app %s: version %s replaces %s", spec.name, stamp.version, self.stamp.version)
        self.stamp = stamp
        self._hosts.upgrade(spec, model_keys, stamp, placement)
        self._live.set_bounds(spec, placement)
        return True

    async def recovered(self) -> tuple[AppSpec, SessionPlacement] | None:
        """After a restart, the newest version found among the App's actors, taken; its spec and placement, if
        newer."""
        newest = await newest_built(self._hosts, self.stamp)
        return (newest[0], newest[3]) if newest is not None and self.take(*newest) else None

    def drain(self) -> None:
        self._drain.start()

    def stop(self) -> None:
        self._drain.stop()


class Drain:
    """The drain, run in the directory's process for as long as actors of older versions remain."""

    def __init__(self, app: str, live: LiveSet, hosts: Hosts) -> None:
        self._app = app
        self._live = live
        self._hosts = hosts
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if (self._task is None or self._task.done()) and self._hosts.old():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # A pass every DRAIN_SECONDS: an actor says when asked whether a session runs; a turn's end is not told.
        while True:
            try:
                if not await drain(self._live, self._hosts):
                    log.info("app %s: every actor of an older version is stopped", self._app)
                    return
            except Exception:
                log.exception("app %s: drain failed; trying again", self._app)
            await asyncio.sleep(DRAIN_SECONDS)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def newest_built(
    hosts: Hosts, stamp: Stamp
) -> tuple[AppSpec, Mapping[str, SecretStr], Stamp, SessionPlacement] | None:
    """Of the actors a restarted directory found, what the newest version was built from, if newer than `stamp`
    (Ray restarts a directory with the spec and placement it was first started with, not those deployed since)."""
    newer = sorted((h.stamp, i, h) for i, h in enumerate(hosts.all()) if h.stamp is not None and h.stamp > stamp)
    for newest, _, host in reversed(newer):
        with contextlib.suppress(Exception):
            spec, model_keys, placement = await host.handle.built_with.remote()
            return spec, model_keys, newest, placement
    return None
