"""Deleting a session of an App: once at a time, and with no lookup loading it back meanwhile. A lookup waits for
the delete, so that no read loads the session back into memory (whose next commit would store it again) between
its release and its rows' deletion."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from .live_set import LiveSet


class Deletes:
    """The sessions of one App being deleted, for its directory."""

    def __init__(self, app: str, store: Any, live: LiveSet, loading: Mapping[str, asyncio.Future[Any]]) -> None:
        self._app = app
        self._store = store
        self._live = live
        self._loading = loading  # the directory's loads under way, by session id
        self._deleting: dict[str, asyncio.Future[None]] = {}

    async def waited(self, session_id: str) -> bool:
        """Wait for a delete of the session under way, if there is one; whether there was."""
        if (deleting := self._deleting.get(session_id)) is None:
            return False
        await asyncio.shield(deleting)
        return True

    async def delete(self, session_id: str) -> bool:
        """Stop the session if live, and delete it with its messages and events."""
        while (other := self._deleting.get(session_id)) is not None:  # deleted once at a time
            await asyncio.shield(other)
        done = self._deleting[session_id] = asyncio.get_running_loop().create_future()
        try:
            if (loading := self._loading.get(session_id)) is not None:  # a load under way lands first
                with contextlib.suppress(Exception):
                    await asyncio.shield(loading)
            # A release under way ends first: one refused (the drain's, of a session that runs) puts the session
            # back in the live set, where this must find it to stop it.
            while (closing := self._live.closing.get(session_id)) is not None:
                await asyncio.shield(closing)
            host = self._live.pop(session_id, None)
            if host is not None:
                await self._live.release(host, session_id)
            deleted: bool = await self._store.delete.remote(self._app, session_id)
            return deleted or host is not None
        finally:
            del self._deleting[session_id]
            done.set_result(None)
