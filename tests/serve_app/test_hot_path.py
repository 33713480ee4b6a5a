"""What keeps a request's way through the ingress short: no thread hop, no access log line."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from aomi_runtime.serve_app.api import create_api
from aomi_runtime.serve_app.routes import ROUTERS
from aomi_runtime.serve_app.settings import Settings


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


def test_the_ingress_writes_no_access_log_line_per_request(runtime_url: str, ray_instance: Path) -> None:
    # Serve's access log costs each request CPU; `GET /metrics` counts requests instead (`access_log` turns it on).
    marker = f"/api/no-such-route-{uuid.uuid4().hex}"
    assert httpx.get(f"{runtime_url}{marker}").status_code == 404
    assert httpx.get(f"{runtime_url}/health").text == "OK"
    replica_logs = sorted((ray_instance / "serve").glob("replica_aomi_Ingress_*.log"))
    assert replica_logs, "no log of the ingress replica found: the check below would prove nothing"
    logged = "".join(path.read_text(errors="replace") for path in replica_logs)
    assert marker not in logged and "GET /health" not in logged
