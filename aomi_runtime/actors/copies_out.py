"""The sessions of a session actor that ingress replicas may keep copies of snapshots of. A copy is counted
(`readers.py`) only once the directory knows copies of the session may be out (its `copies_out`): if this actor is
then lost, the directory fences the session, so that its next actor holds back commits until every copy served
from here has run out its lease."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from .readers import Readers


class CopiesOut:
    """The directory told, per session, before any copy of it is counted."""

    def __init__(self, readers: Readers, directory: Any) -> None:
        self._readers = readers
        self._directory = directory  # None: an actor no directory placed (tests), which fences nothing
        self._noted: set[str] = set()
        self._noting: dict[str, asyncio.Task[None]] = {}

    def hold(self, reader: str, session_id: str, here: Callable[[], bool]) -> tuple[int, int] | None:
        """Count the copy `reader` keeps (the epoch and number it is counted under), if the directory knows of
        copies of the session; else None (not to be kept), and the directory is told for a next read. `here` says
        whether the session is still hosted here, not released since."""
        if session_id in self._noted or self._directory is None:
            return self._readers.hold(reader, session_id)
        if session_id not in self._noting:
            self._noting[session_id] = asyncio.create_task(self._note(session_id, here))
        return None

    def forget(self, session_id: str) -> None:
        """The session left this actor: its next actor tells the directory again."""
        self._noted.discard(session_id)

    async def _note(self, session_id: str, here: Callable[[], bool]) -> None:
        with contextlib.suppress(Exception):  # the directory gone: no copies, a next read asks again
            await self._directory.copies_out.remote(session_id)
            if here():  # not released meanwhile
                self._noted.add(session_id)
        del self._noting[session_id]
