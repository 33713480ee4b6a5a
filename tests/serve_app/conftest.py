"""An HTTP client of the shared test runtime, and session ids for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def client(runtime_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=runtime_url, timeout=30) as c:
        yield c


def sid() -> str:
    return str(uuid.uuid4())


def h(session_id: str) -> dict[str, str]:
    return {"X-Session-Id": session_id}
