"""An HTTP client of the shared test runtime, session ids and App keys for it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from aomi_runtime.backends.keys import SqlKeys
from aomi_runtime.serve_app.settings import Settings


@pytest.fixture
async def client(runtime_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=runtime_url, timeout=30) as c:
        yield c


def sid() -> str:
    return str(uuid.uuid4())


def h(session_id: str) -> dict[str, str]:
    return {"X-Session-Id": session_id}


@pytest.fixture(scope="module")
def keys(runtime_settings: Settings) -> dict[str, str]:
    """One key for each keyed App, made as an operator would, in the runtime's own database."""

    async def make() -> dict[str, str]:
        store = SqlKeys.from_url(runtime_settings.database_url)
        try:
            return {app: await store.create(app, "tests") for app in ("research", "billing")}
        finally:
            await store.close()

    return asyncio.run(make())


def k(key: str, header: str = "X-API-Key") -> dict[str, str]:
    return {header: key}
