"""What keeps a request's way through the ingress short, checked on the app's own structure."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from aomi_runtime.serve_app.routes import create_api
from aomi_runtime.serve_app.settings import Settings


def calls(dependant: Dependant) -> Iterator[tuple[str, object]]:
    for sub in dependant.dependencies:
        yield from calls(sub)
    if dependant.call is not None:
        yield getattr(dependant.call, "__name__", repr(dependant.call)), dependant.call


def test_no_route_or_dependency_runs_in_a_worker_thread() -> None:
    # FastAPI runs a plain `def` route or dependency in anyio's thread pool: a thread hop on every request.
    api = create_api(None, Settings())  # type: ignore[arg-type]  # routes only, none is called
    routes = [r for r in api.routes if isinstance(r, APIRoute)]
    assert len(routes) > 15
    threaded = {
        f"{route.path}: {name}"
        for route in routes
        for name, call in calls(route.dependant)
        if not inspect.iscoroutinefunction(call)
    }
    assert not threaded, f"runs in a worker thread: {sorted(threaded)}"
