"""The Serve deployment: one FastAPI ingress over the runtime's actors, and the typed app builder."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from ..agent.logs import configure_logging
from ..backends.otlp import start_tracing, stop_tracing
from .api import create_api
from .settings import Settings

# Each open SSE stream holds a request: allow many (the default, 5, would queue the sixth stream).
MAX_ONGOING_REQUESTS = 1000
GRACEFUL_SHUTDOWN_SECONDS = 5  # clients resume with Last-Event-ID
# How often a stopping replica looks for requests still running: Serve's default, 2 s, is waited once even by an
# idle replica, and is most of the time `launch`'s `stop` takes.
SHUTDOWN_CHECK_SECONDS = 0.2


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_SECONDS,
    graceful_shutdown_wait_loop_s=SHUTDOWN_CHECK_SECONDS,
    ray_actor_options={"num_cpus": 0},
)
@serve.ingress()
class Ingress:
    """Serves `docs/api.md`. The FastAPI app is built on the replica, from the settings it was bound with."""

    def __init__(self, settings: Settings) -> None:
        configure_logging()
        start_tracing("replica")  # if OTEL_EXPORTER_OTLP_* say where to
        self._settings = settings
        self._runtime = settings.runtime()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self._runtime, self._settings)

    async def __del__(self) -> None:
        """Serve calls it as the replica stops: the session actors stop counting this replica's copies now."""
        try:
            await self._runtime.copies.aclose()
        finally:
            await asyncio.to_thread(stop_tracing)  # the last requests' spans sent before the process ends


def build_application(settings: Settings) -> Application:
    """The runtime as a Serve application, for `serve.run`: stamped with the time it is built, once for all its
    replicas, so that each App's directory tells this deploy's version from an older one's."""
    if not settings.deployed_at:
        settings = settings.model_copy(update={"deployed_at": time.time()})
    return Ingress.bind(settings)  # type: ignore[attr-defined,no-any-return]  # @serve.deployment made a Deployment


def build(args: dict[str, Any]) -> Application:
    """Builder for `serve run aomi_runtime.serve_app.app:build database_url=...` (other settings from `AOMI_*`)."""
    return build_application(Settings(**args))
