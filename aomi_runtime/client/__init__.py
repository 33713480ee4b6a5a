"""The Python client of the runtime: `Client` (sync) and `AsyncClient`, their sessions, and a turn's `Reply`.

Importing it imports no Ray and no server: only `bootstrap` does, loaded by the modes that need them
(`Client.local`, `Client.in_cluster`).
"""

from __future__ import annotations

from .async_client import AsyncClient
from .async_session import AsyncSession
from .reply import Reply
from .sync import Client, Session

__all__ = ["AsyncClient", "AsyncSession", "Client", "Reply", "Session"]
