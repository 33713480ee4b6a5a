"""Shared, expensive things, started once per test run: one local Ray instance and one Serve runtime."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ray 2.60 would turn token auth on for instances started after a local init, and report usage; neither here.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

TEST_NAMESPACE = "aomi-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """A local Ray instance of its own (never one left running by `ray start`), in a short temp dir."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="aomi-ray-", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def runtime_settings(tmp_path_factory: pytest.TempPathFactory) -> object:
    from aomi_runtime.serve_app.settings import Settings

    db = Path(tmp_path_factory.mktemp("runtime")) / "runtime.db"
    return Settings(database_url=f"sqlite:///{db}", port=free_port(), namespace=TEST_NAMESPACE, keepalive_seconds=1)


@pytest.fixture(scope="session")
def runtime_url(ray_instance: None, runtime_settings: object) -> Iterator[str]:
    """The runtime on Serve, over real HTTP, with its history in SQLite."""
    from ray import serve

    from aomi_runtime.actors.runtime import Runtime
    from aomi_runtime.serve_app.app import build_app
    from aomi_runtime.serve_app.settings import Settings

    assert isinstance(runtime_settings, Settings)
    serve.start(http_options={"host": "127.0.0.1", "port": runtime_settings.port})
    serve.run(build_app(runtime_settings), name="aomi", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{runtime_settings.port}"
    finally:
        serve.delete("aomi")
        asyncio.run(Runtime(runtime_settings.apps, runtime_settings.database_url, runtime_settings.namespace).stop())
        serve.shutdown()
