"""Operating the runtime: the health check and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..auth import RuntimeDep
from ..metrics import Metrics
from ..schema import text_answers

router = APIRouter()


@router.get("/health", response_class=PlainTextResponse, responses=text_answers("text/plain", "OK"))
async def health() -> str:
    return "OK"


@router.get("/metrics", response_class=Response, responses=text_answers("text/plain", "Prometheus metrics.", 503))
async def prometheus_metrics(request: Request, runtime: RuntimeDep) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(await metrics.render(runtime), media_type=CONTENT_TYPE_LATEST)
