"""The FastAPI app of one ingress replica: the routers, middleware and error handlers over the runtime's actors."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from ..actors.runtime import Runtime
from ..agent.tracing import tracer
from . import errors
from .auth import Keys
from .metrics import Metrics, RequestTimer
from .params import utf8_query
from .routes import ROUTERS
from .schema import describe
from .settings import Settings


def create_api(runtime: Runtime, settings: Settings) -> FastAPI:
    """The FastAPI app of one ingress replica, over the runtime's actors."""
    # No redirect from `/api/sessions/` (an empty session id) to `/api/sessions`: a 307 without an error body,
    # then a misleading answer from another route; unknown paths answer 404 with `{"error": ...}`.
    api = FastAPI(title="aomi-runtime", version="0.1.0", redirect_slashes=False, dependencies=[Depends(utf8_query)])
    metrics = Metrics()
    api.state.runtime = runtime
    api.state.settings = settings
    api.state.metrics = metrics
    api.state.keys = Keys(runtime, settings.key_cache_seconds)
    api.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["*"],
    )
    api.add_middleware(RequestTimer, metrics=metrics)
    if (traced := tracer()) is not None:  # added last, so outermost: the span covers the whole request
        from .request_spans import RequestSpans

        api.add_middleware(RequestSpans, tracer=traced)
    errors.install(api)
    for router in ROUTERS:
        api.include_router(router)
    describe(api, [app.name for app in settings.apps])
    return api
