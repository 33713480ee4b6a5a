"""What keeps a request's way through the ingress short: no thread hop, no access log line (unless asked for)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from ray import serve

from aomi_runtime.serve_app.api import create_api
from aomi_runtime.serve_app.launch import APP_NAME, deploy
from aomi_runtime.serve_app.routes import ROUTERS
from aomi_runtime.serve_app.settings import Settings
from tests.helpers import eventually


def calls(dependant: Dependant) -> Iterator[tuple[str, object]]:
    for sub in dependant.dependencies:
        yield from calls(sub)
    if dependant.call is not None:
        yield getattr(dependant.call, "__name__", repr(dependant.call)), dependant.call


def test_no_route_or_dependency_runs_in_a_worker_thread() -> None:
    # FastAPI runs a plain `def` route or dependency in anyio's thread pool: a thread hop on every request.
    api = create_api(None, Settings())  # type: ignore[arg-type]  # routes only, none is called
    # FastAPI includes a router's routes lazily: read them from the routers, and the app's own dependencies.
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 15 and len(api.openapi()["paths"]) == len({r.path for r in routes})
    threaded = {
        f"{route.path}: {name}"
        for route in routes
        for name, call in calls(route.dependant)
        if not inspect.iscoroutinefunction(call)
    } | {f"app: {d.dependency}" for d in api.router.dependencies if not inspect.iscoroutinefunction(d.dependency)}
    assert api.router.dependencies
    assert not threaded, f"runs in a worker thread: {sorted(threaded)}"


def access_logged(logs: Path, app: str, request_id: str) -> list[str]:
    """The lines of `app`'s ingress replica logs naming a request id (Serve's access log line does: it names the
    route's pattern, not the path, so a request's path cannot tell its line)."""
    paths = sorted((logs / "serve").glob(f"replica_{app}_Ingress_*.log"))
    assert paths, f"no log of {app}'s ingress replica: a check for lines in it would prove nothing"
    return [line for path in paths for line in path.read_text(errors="replace").splitlines() if request_id in line]


def test_the_ingress_writes_no_access_log_line_unless_access_log_is_on(
    runtime_url: str, runtime_settings: Settings, ray_instance: Path, proxy_url: str
) -> None:
    # Serve's access log costs each request CPU; `GET /metrics` counts requests instead (`access_log` turns it on).
    # The control: the same runtime deployed by `deploy` with access_log on, beside the shared one (which is
    # deployed as `launch` deploys it, with the default setting), over the same App actors.
    logged_app = f"{APP_NAME}-logged"
    try:
        deploy(runtime_settings.model_copy(update={"access_log": True}), name=logged_app, route_prefix="/logged")
        quiet, loud = (f"access-log-{uuid.uuid4().hex}" for _ in range(2))
        assert httpx.get(f"{runtime_url}/health", headers={"X-Request-ID": quiet}).text == "OK"
        assert httpx.get(f"{proxy_url}/logged/health", headers={"X-Request-ID": loud}).text == "OK"
        # The moment: the line of the request sent second is written, so the first one's would be by now.
        (line,) = asyncio.run(eventually(lambda: access_logged(ray_instance, logged_app, loud)))
        assert "GET /logged/health 200" in line
        assert access_logged(ray_instance, APP_NAME, quiet) == []
        assert access_logged(ray_instance, APP_NAME, "GET /health") == []
    finally:
        serve.delete(logged_app)
