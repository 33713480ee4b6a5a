"""Shared, expensive things, started once per test run: one local Ray instance and one Serve runtime."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aomi_runtime.actors.node import lean_ray_env

# Ray 2.60 would turn token auth on for instances started after a local init, and report usage; neither here.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
lean_ray_env(os.environ)  # as `launch` starts Ray; the runtimes the tests start in other processes inherit it
# A developer's own OpenTelemetry settings would send the tests' spans to their collector, and take the place of a
# test's (a TRACES endpoint wins over the one a test sets): the tests that trace set their own.
for _name in [name for name in os.environ if name.startswith("OTEL_")]:
    del os.environ[_name]

TEST_NAMESPACE = "aomi-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Ports of Serve's direct-ingress range beyond the shared runtime's, for the Serve applications tests deploy beside
# it (each ingress replica takes one; a port something else holds is skipped).
SIDE_APP_PORTS = 15


@pytest.fixture(scope="session")
def runtime_port() -> int:
    """The shared runtime's port, where its ingress replica answers: chosen before Ray starts, which fixes it."""
    return free_port()


@pytest.fixture(scope="session")
def ray_instance(runtime_port: int) -> Iterator[Path]:
    """A local Ray instance of its own (never one left running by `ray start`), in a short temp dir, with Serve's
    direct ingress on as `launch` starts it; yields the folder of its logs."""
    import ray

    from aomi_runtime.serve_app.ingress import ray_env

    temp_dir = tempfile.mkdtemp(prefix="aomi-ray-", dir="/tmp")
    # Ray's processes keep the environment they start with; the tests' own processes (a CLI's runtime, a cluster)
    # must not inherit these, so they are set for `ray.init` alone.
    ingress_env = ray_env("direct", runtime_port, replicas=1 + SIDE_APP_PORTS)
    saved = {name: os.environ.get(name) for name in ingress_env}
    os.environ.update(ingress_env)
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
    try:
        yield Path(temp_dir) / "session_latest" / "logs"
    finally:
        # Waited for: under load a Ray process may outlive Ray's 1 s wait, and its handle, collected while it runs,
        # fails the run ("subprocess ... is still running").
        ray.shutdown(wait_for_processes=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """A Ray temp dir for a runtime a test starts in another process (the CLI, a notebook's kernel): every
    process of that Ray instance names it, so the test can check none is left, and kill any that is."""
    from tests.helpers import processes_using

    path = tempfile.mkdtemp(prefix="aomi-cli-", dir="/tmp")  # short: Ray's socket paths must stay under 107 bytes
    yield path
    for line in processes_using(path):
        os.kill(int(line.split()[0]), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the module; when no server answers, skipped, saying why, or failed under
    `AOMI_REQUIRE_POSTGRES=1`."""
    from tests.postgres import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each SQL database history is kept in: a SQLite file of the test's own, the module's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[tuple[object, str]]:
    """A local server speaking OpenAI's and Anthropic's streaming protocols, for the whole run."""
    from tests.fake_provider import running_fake_provider

    with running_fake_provider() as (fake, url):
        yield fake, url


def shared_apps(provider_url: str) -> tuple[object, ...]:
    """The shared runtime's Apps: the public scripted default, two keyed Apps, a public one on remote models.

    `billing` has a small size limit: over it, a user_state still fits in a URL (Serve's HTTP parser refuses
    request lines of 64 KiB, the default limit, before the runtime sees them)."""
    from aomi_runtime.agent.apps import AppSpec, Limits, ModelSpec

    def remote(provider: str, app: str, **options: object) -> ModelSpec:
        label, slug = ("Fake GPT", "fake-gpt") if provider == "openai" else ("Fake Claude", "fake-claude")
        base = f"{provider_url}/v1" if provider == "openai" else provider_url
        return ModelSpec(label=label, slug=slug, provider=provider, model=f"{slug}-{app}", base_url=base,
                         api_key_env=FAKE_KEY_ENV, **options)  # type: ignore[arg-type]  # fmt: skip

    scripted = ModelSpec(label="Scripted", slug="scripted", options={"count_pause": 0.05})
    return (
        AppSpec(name="default", simulator="demo"),
        AppSpec(
            name="research",
            public=False,
            tools=("time_now", "long_task"),
            models=(remote("openai", "research"), scripted),
        ),
        AppSpec(
            name="billing",
            public=False,
            tools=("time_now", SECRET_TOOL),
            limits=Limits(max_message_bytes=SMALL_LIMIT),
        ),
        AppSpec(
            name="helpdesk",
            tools=("always_fails",),
            models=(
                # The fake provider stands for the providers' own APIs: a client's own key may be sent to it.
                remote("openai", "helpdesk", timeout_seconds=1.5, max_retries=1, client_keys="openai"),
                remote("anthropic", "helpdesk", timeout_seconds=1.5, max_retries=1, client_keys="anthropic"),
            ),
        ),
    )


FAKE_KEY_ENV = "AOMI_TEST_FAKE_PROVIDER_KEY"
SECRET_TOOL = "tests.serve_app.secret_tools:secret_digest"  # billing's: reads a client secret
# The shared runtime seals client secrets with a key: they are in its SQLite file, encrypted (test_secrets.py).
SECRETS_KEY = "ZGlmZmVyZW50LWtleS1mb3ItdGVzdHMtb25seS0zMmI="
SMALL_LIMIT = 4096  # billing's max_message_bytes


@pytest.fixture(scope="session")
def runtime_settings(
    tmp_path_factory: pytest.TempPathFactory, fake_provider: tuple[object, str], runtime_port: int
) -> object:
    from aomi_runtime.serve_app.settings import Settings

    os.environ[FAKE_KEY_ENV] = "sk-fake-provider-key"
    db = Path(tmp_path_factory.mktemp("runtime")) / "runtime.db"
    return Settings(
        database_url=f"sqlite:///{db}",
        port=runtime_port,
        namespace=TEST_NAMESPACE,
        keepalive_seconds=1,
        key_cache_seconds=0.5,
        apps=shared_apps(fake_provider[1]),
        secrets_key=SECRETS_KEY,
    )


@pytest.fixture(scope="session")
def proxy_url() -> str:
    """Serve's proxy beside the shared runtime, where the applications tests deploy beside it answer at their
    route prefixes (the runtime's replica answers its own routes only)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def runtime_url(ray_instance: None, runtime_settings: object, proxy_url: str) -> Iterator[str]:
    """The runtime on Serve, over real HTTP, with its history in SQLite: its ingress replica answering on the
    settings' port itself, as `launch` starts it by default."""
    from ray import serve

    from aomi_runtime.serve_app.ingress import direct_urls
    from aomi_runtime.serve_app.launch import APP_NAME, deploy
    from aomi_runtime.serve_app.settings import Settings

    assert isinstance(runtime_settings, Settings)
    url = f"http://{runtime_settings.host}:{runtime_settings.port}"
    # As `launch` starts it, on the settings' host: the default (test_security.py checks what it listens on).
    serve.start(http_options={"host": runtime_settings.host, "port": int(proxy_url.rsplit(":", 1)[1])})
    deploy(runtime_settings)  # as `launch` deploys it
    try:
        assert direct_urls(APP_NAME, runtime_settings.host) == (url,), "the runtime's replica is not on its port"
        yield url
    finally:
        serve.delete(APP_NAME)
        asyncio.run(runtime_settings.runtime().stop())
        serve.shutdown()


@pytest.fixture(autouse=True)
def _close_live_sessions(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on the shared runtime, its sessions leave memory (they stay stored): idle session actors
    cost CPU, and a suite that kept hundreds alive would measure that instead of what it tests."""
    yield
    if "runtime_url" in request.fixturenames:
        settings = request.getfixturevalue("runtime_settings")
        asyncio.run(settings.runtime().close_sessions())
