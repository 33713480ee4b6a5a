"""The history store actor: one per App, it owns the App's history backend so session actors stay lean."""

from __future__ import annotations

import builtins
import time
from datetime import datetime
from typing import Any

import ray
from pydantic import SecretStr

from ..agent.errors import AppMismatch
from ..agent.logs import configure_logging
from ..agent.protocols import HistoryBackend, LoadsJson
from ..agent.records import Commit, Event, Message, SessionRecord
from ..agent.stats import SIZE_BUCKETS, Histogram
from ..backends.history import GroupCommit, open_history
from ..backends.keys import SqlKeys
from ..backends.secrets import SecretInfo, SqlSecrets


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class HistoryStore:
    """A `HistoryBackend` behind an actor, bound to one App. Its writes are idempotent, so Ray may retry
    them after a restart (`max_task_retries=-1`) without duplicating anything."""

    def __init__(self, app: str, url: str, secrets_key: SecretStr | None = None, migrate: bool = True) -> None:
        configure_logging()
        self._app = app
        # `migrate`: each backend's setup upgrades the database's schema (or, off, refuses one behind this version's)
        self._backend = open_history(url, migrate=migrate)
        self._keys = SqlKeys.from_url(url, migrate=migrate)
        # Every replica and session actor of the App reaches the same secrets here, in memory without a key.
        self._secrets = SqlSecrets.open(url, secrets_key, migrate=migrate)
        self._write_seconds = Histogram()
        self._batch_sizes = Histogram(SIZE_BUCKETS)
        self._commits_per_transaction = Histogram(SIZE_BUCKETS)
        # Every session actor of the App commits through here: those that arrive together share a transaction.
        self._group = GroupCommit(self._backend, on_batch=self._commits_per_transaction.observe)

    async def _ready(self, app: str) -> HistoryBackend:
        if app != self._app:
            raise AppMismatch(f"This store holds the App {self._app!r}, not {app!r}.")
        await self._backend.setup()
        return self._backend

    async def commit_json(self, app: str, raw: bytes) -> None:
        """Store a `Commit` given as its JSON: what session actors send, as Ray moves one string faster than a few
        pickled models (~0.2 ms of a ~2 ms call, on each of a turn's several flushes)."""
        commit = Commit.model_validate_json(raw)
        await self._ready(app)
        started = time.perf_counter()
        await self._group.commit(app, commit)
        self._write_seconds.observe(time.perf_counter() - started)
        self._batch_sizes.observe(1 + len(commit.messages) + len(commit.events))

    async def stats(self) -> dict[str, Any]:
        """Write latency (queueing included), rows in one commit (the record, messages and events) and commits in
        one transaction, for /metrics."""
        return {
            "write_seconds": self._write_seconds.snapshot(),
            "batch_sizes": self._batch_sizes.snapshot(),
            "commits_per_transaction": self._commits_per_transaction.snapshot(),
        }

    async def load_json(self, app: str, session_id: str) -> bytes | None:
        """A stored session as the JSON of a `StoredSession`: one string crosses to the caller, not thousands of pickled
        models (for 10,000 messages about 10 ms against 200). None if no App has it.

        Raises:
            AppMismatch: another App has it (asked only when this App has not, so a load is one call).
        """
        backend = await self._ready(app)
        if isinstance(backend, LoadsJson):
            raw = await backend.load_json(app, session_id)
        else:
            stored = await backend.load(app, session_id)
            raw = None if stored is None else stored.model_dump_json().encode()
        if raw is None and (owner := await backend.owner(session_id)) is not None and owner != app:
            raise AppMismatch.of(session_id, app)
        return raw

    async def get(self, app: str, session_id: str) -> SessionRecord | None:
        return await (await self._ready(app)).get(app, session_id)

    async def list(self, app: str, public_key: str | None, limit: int) -> builtins.list[SessionRecord]:
        return await (await self._ready(app)).list(app, public_key, limit)

    async def messages(self, app: str, session_id: str, before: int | None, limit: int) -> builtins.list[Message]:
        return await (await self._ready(app)).messages(app, session_id, before, limit)

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        return await (await self._ready(app)).events(app, session_id, after, limit)

    async def last_events(self, app: str, session_id: str, count: int) -> builtins.list[Event]:
        return await (await self._ready(app)).last_events(app, session_id, count)

    async def delete(self, app: str, session_id: str) -> bool:
        return await (await self._ready(app)).delete(app, session_id)

    async def stale(self, app: str, before: datetime, limit: int) -> builtins.list[str]:
        return await (await self._ready(app)).stale(app, before, limit)

    async def owner(self, session_id: str) -> str | None:
        return await (await self._ready(self._app)).owner(session_id)

    async def count(self, app: str) -> int:
        return await (await self._ready(app)).count(app)

    async def check_key(self, key: str) -> bool:
        """Whether `key` is a live key of this store's App."""
        return await self._keys.check(self._app, key)

    # --- client secrets: of this store's App only, per client ---------------------------------------------------

    async def put_secrets(self, client_id: str, values: dict[str, str], label: str = "") -> None:
        await self._secrets.put(self._app, client_id, values, label)

    async def secret(self, client_id: str, name: str) -> str | None:
        return await self._secrets.get(self._app, client_id, name)

    async def describe_secrets(self, client_id: str, prefix: str = "") -> builtins.list[SecretInfo]:
        return await self._secrets.describe(self._app, client_id, prefix)

    async def delete_secrets(self, client_id: str, name: str | None = None) -> int:
        return await self._secrets.delete(self._app, client_id, name)

    async def close(self) -> None:
        await self._backend.close()
        await self._keys.close()
        await self._secrets.close()
