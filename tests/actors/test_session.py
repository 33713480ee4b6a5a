"""The session actor's own figures (what it reports to the directory's memory budget), and its stop."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
import ray

from aomi_runtime.actors.session import SessionActor, private_bytes
from aomi_runtime.actors.store import HistoryStore
from aomi_runtime.agent.apps import AppSpec, ModelSpec
from aomi_runtime.agent.errors import SessionClosed
from tests.fake_provider import running_fake_provider
from tests.helpers import eventually


def test_private_memory_leaves_out_the_pages_shared_with_other_processes() -> None:
    # Every Ray worker maps the same libraries (some 45 MB, held once by the node): counted per session, they
    # would fill the budget at a fraction of the sessions it can hold.
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as statm:
        resident, shared = (int(n) * page for n in statm.read().split()[1:3])
    assert 0 < private_bytes() < resident
    assert abs(private_bytes() - (resident - shared)) < 16 << 20


def served_connections(port: int | None) -> list[Any]:
    """The connections this process serves on `port` (its server's side of each)."""
    return [c for c in psutil.Process().net_connections("tcp") if c.laddr.port == port and c.raddr]


async def test_a_stopped_session_actor_has_closed_its_model_providers_connections(
    ray_instance: None, tmp_path: Path
) -> None:
    # The actor's own fake provider: this process serves it, so its side of each connection is visible here; it
    # keeps an idle connection far longer than the wait below, so that only the client can have closed it.
    with running_fake_provider(keep_alive=600) as (_fake, base):
        port = urlsplit(base).port
        spec = AppSpec(
            name="closing",
            models=(ModelSpec(label="Fake", slug="fake", provider="openai", model="m", base_url=f"{base}/v1"),),
        )
        store = HistoryStore.remote(spec.name, f"sqlite:///{tmp_path / 'stop.db'}")  # type: ignore[attr-defined]
        worker = SessionActor.remote(spec, store, {})  # type: ignore[attr-defined]
        try:
            session_id = str(uuid.uuid4())
            await worker.open.remote(session_id, None)
            await worker.chat.remote(session_id, "hello", None, "r1", None)

            async def answered_and_connected() -> list[Any]:
                if json.loads(await worker.state.remote(session_id, None))["is_processing"]:
                    return []
                return served_connections(port)

            await eventually(answered_and_connected)  # the SDK's client keeps its connection for the next request
            await worker.stop.remote()
            await eventually(lambda: not served_connections(port))
            # Closed by the actor, which still runs (not by its death), and which no directory may pool again.
            with pytest.raises(SessionClosed, match="stopped"):
                await worker.held.remote()
        finally:
            ray.kill(worker, no_restart=True)
            await store.close.remote()
            ray.kill(store, no_restart=True)
