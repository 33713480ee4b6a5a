"""What the agent tests share: an in-memory history, and sessions closed when a test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from aomi_runtime.agent.session import LiveSession
from aomi_runtime.backends.history import InMemoryHistory


@pytest.fixture
def history() -> InMemoryHistory:
    return InMemoryHistory()


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[LiveSession], LiveSession]]:
    """Closes each session handed to it when the test ends, however it ends (closing twice is harmless)."""
    opened: list[LiveSession] = []

    def close_at_end(session: LiveSession) -> LiveSession:
        opened.append(session)
        return session

    try:
        yield close_at_end
    finally:
        for session in opened:
            await session.close()
