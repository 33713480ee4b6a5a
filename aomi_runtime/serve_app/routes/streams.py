"""`GET /api/updates`: a session's events as Server-Sent Events, from where the client asks, then live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ...agent.errors import InvalidInput
from ..auth import RuntimeDep
from ..metrics import Metrics
from ..params import SessionId
from ..schema import EventStreamResponse, text_answers
from ..settings import Settings
from ..sse import EventStream

router = APIRouter()


@router.get(
    "/api/updates",
    response_class=EventStreamResponse,
    responses=text_answers("text/event-stream", "The session's events, then live ones.", 422, 429, 503),
)
async def updates(
    request: Request,
    runtime: RuntimeDep,
    session_id: SessionId,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """With neither `Last-Event-ID` nor `after`, from the live position: Aomi's client never sends an id and
    reconnects after every close, so a replay would show it every old event again. `after=0` replays everything."""
    start = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InvalidInput("Last-Event-ID must be the number of an event this stream sent.")
        start = int(last_event_id)
    settings: Settings = request.app.state.settings
    metrics: Metrics = request.app.state.metrics
    stream = EventStream(
        runtime,
        session_id,
        start=start,
        keepalive=settings.keepalive_seconds,
        max_bytes=settings.stream_max_bytes,
        open_streams=metrics.stream_subscribers,
    )
    await stream.open(settings.max_streams_per_session)
    return StreamingResponse(
        stream.frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
