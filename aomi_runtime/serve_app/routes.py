"""The HTTP routes of `API.md`: each parses, finds the session, awaits its actor, and answers."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException

from ..actors.runtime import Runtime
from ..agent.apps import DEFAULT_APP, utf8_size
from ..agent.errors import InvalidInput, SessionNotFound
from ..agent.records import EMPTY_SNAPSHOT, SessionInfo, is_valid_session_id
from . import errors
from .metrics import Metrics, RequestTimer
from .schema import (
    NOT_BLANK,
    SESSION_ID_SCHEMA,
    EventStreamResponse,
    ModelChosen,
    SessionArchived,
    SessionCreated,
    SessionDeleted,
    StreamEvent,
    SystemPosted,
    answers,
    describe,
    snapshot_answers,
    text_answers,
)
from .settings import Settings
from .sse import EventStream

JSON = "application/json"
EMPTY_SNAPSHOT_JSON = EMPTY_SNAPSHOT.model_dump_json(exclude={"last_event_id"}).encode()
MAX_EVENTS = 10_000
MAX_SESSIONS_LISTED = 500


def check_id(value: str, what: str) -> str:
    if not is_valid_session_id(value):
        raise InvalidInput(f"The {what} is malformed: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'.")
    return value


def check_session_id(session_id: str | None) -> str:
    if not session_id:
        raise InvalidInput("The X-Session-Id header is missing; send the session's id in it.")
    return check_id(session_id, "session id")


# Optional to FastAPI, so that a missing id answers our 400 (API.md), not its 422; the pattern is for the schema.
SESSION_HEADER = Header(description="The session's id, made by the client.", json_schema_extra=SESSION_ID_SCHEMA)
SESSION_PATH = Path(description="The session's id.", json_schema_extra=SESSION_ID_SCHEMA)
PathId = Annotated[str, SESSION_PATH]


# The dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on
# every request.
async def session_header(x_session_id: Annotated[str | None, SESSION_HEADER] = None) -> str:
    return check_session_id(x_session_id)


SessionId = Annotated[str, Depends(session_header)]


async def api_key(
    x_api_key: Annotated[str | None, Header()] = None,
    aomi_app_key: Annotated[str | None, Header(alias="AOMI-APP-KEY")] = None,
) -> str | None:
    return x_api_key or aomi_app_key


ApiKey = Annotated[str | None, Depends(api_key)]


def parse_user_state(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        raise InvalidInput("user_state is not valid JSON; send a JSON object.") from None
    if not isinstance(state, dict):
        raise InvalidInput("user_state must be a JSON object.")
    return state


async def utf8_query(request: Request) -> None:
    """Refuse a query string that is not UTF-8 once percent-decoded: Starlette would put U+FFFD in place of the
    bad bytes, and the user's text would be stored changed instead of refused."""
    try:
        unquote_to_bytes(request.scope.get("query_string", b"")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The query string is not UTF-8 once percent-decoded; encode text as UTF-8.") from None


async def json_content(request: Request) -> None:
    """A body sent to a route that reads JSON must say so: FastAPI would otherwise answer 422 about the body's
    shape, where `API.md` gives 415 for a body without the JSON content type."""
    if await request.body() and "json" not in request.headers.get("content-type", ""):
        raise HTTPException(415, "Send the body as JSON, with Content-Type: application/json.")


async def message_from_body(request: Request) -> str | None:
    """`POST /api/chat` takes `message` in the query, and tolerates it in a JSON body."""
    await json_content(request)
    raw = await request.body()
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("The body is not valid JSON.") from None
    message = body.get("message") if isinstance(body, dict) else None
    if message is not None and not isinstance(message, str):
        raise HTTPException(422, "`message` must be a string.")  # a wrong type: 422, as FastAPI answers elsewhere
    return message


class CreateSession(BaseModel):
    # Tolerated in the body, but not in API.md (the header carries the id): kept out of the schema.
    session_id: SkipJsonSchema[str | None] = None
    public_key: str | None = None
    title: Annotated[str | None, Field(json_schema_extra=NOT_BLANK)] = None


class Rename(BaseModel):
    # Optional here so that a missing title answers our 400, not FastAPI's 422; required in the schema.
    model_config = ConfigDict(json_schema_extra={"required": ["title"]})

    title: Annotated[str | None, Field(json_schema_extra=NOT_BLANK)] = None


def create_api(runtime: Runtime, settings: Settings) -> FastAPI:
    """The FastAPI app of one ingress replica, over the runtime's actors."""
    # No redirect from `/api/sessions/` (an empty session id) to `/api/sessions`: a 307 without an error body,
    # then a misleading answer from another route; unknown paths answer 404 with `{"error": ...}`.
    api = FastAPI(title="aomi-runtime", version="0.1.0", redirect_slashes=False, dependencies=[Depends(utf8_query)])
    metrics = Metrics()
    api.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["*"],
    )
    api.add_middleware(RequestTimer, metrics=metrics)
    errors.install(api)
    describe(api, [app.name for app in settings.apps])

    def session_json(body: bytes) -> Response:
        return Response(body, media_type=JSON)

    @api.get("/health", response_class=PlainTextResponse, responses=text_answers("text/plain", "OK"))
    async def health() -> str:
        return "OK"

    @api.get("/metrics", response_class=Response, responses=text_answers("text/plain", "Prometheus metrics."))
    async def prometheus_metrics() -> Response:
        return Response(await metrics.render(runtime), media_type=CONTENT_TYPE_LATEST)

    @api.post("/api/chat", response_model=None, responses=snapshot_answers(401, 403, 409, 413, 415, 422, 503))
    async def chat(
        request: Request,
        session_id: SessionId,
        key: ApiKey,
        message: str | None = None,
        app: str | None = None,
        namespace: str | None = None,
        public_key: str | None = None,
        user_state: str | None = None,
        client_id: str | None = None,
        request_id: str | None = None,
    ) -> Response:
        """Our addition: `request_id`, chosen by the client, makes a retried request add its message once, and
        marks the turn's `processing_started` and `processing_done` events."""
        if message is None:
            message = await message_from_body(request)
        if message is None:
            raise InvalidInput("The message is missing; send it as the `message` query parameter.")
        if request_id is not None:
            check_id(request_id, "request_id")
        actors = runtime.app(app or namespace or DEFAULT_APP)
        await runtime.authorize(actors, key)
        spec = actors.spec
        state = parse_user_state(user_state)
        spec.limits.check_message(message)  # before any actor is found or made
        if state is not None:
            spec.limits.check_user_state(state)
        body = await runtime.chat(
            session_id,
            message,
            app=spec.name,
            user_state=state,
            public_key=public_key,
            request_id=request_id,
        )
        return session_json(body)

    @api.get("/api/state", response_model=None, responses=snapshot_answers(413, 503))
    async def state(session_id: SessionId, user_state: str | None = None, client_id: str | None = None) -> Response:
        try:
            return session_json(await runtime.call(session_id, "state", parse_user_state(user_state)))
        except SessionNotFound:
            return session_json(EMPTY_SNAPSHOT_JSON)

    @api.post("/api/interrupt", response_model=None, responses=snapshot_answers(401, 403, 404, 503))
    async def interrupt(session_id: SessionId, key: ApiKey) -> Response:
        owner = await runtime.session_app(session_id)
        await runtime.authorize(owner, key)
        return session_json(await runtime.call(session_id, "interrupt", app=owner.spec.name))

    @api.get(
        "/api/updates",
        response_class=EventStreamResponse,
        responses=text_answers("text/event-stream", "The session's events, then live ones.", 422),
    )
    async def updates(
        session_id: SessionId,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int | None, Query(ge=0)] = None,
    ) -> StreamingResponse:
        start = after if after is not None else 0
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                raise InvalidInput("Last-Event-ID must be the number of an event this stream sent.")
            start = int(last_event_id)
        stream = EventStream(
            runtime,
            session_id,
            after=start,
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

    @api.get("/api/events", response_model=None, responses=answers(list[StreamEvent], 404, 422, 503))
    async def events(
        session_id: SessionId, count: Annotated[int, Query(ge=0, le=MAX_EVENTS)] = 100
    ) -> list[dict[str, Any]]:
        return [e.data for e in await runtime.call(session_id, "last_events", count)]

    @api.post("/api/system", response_model=None, responses=answers(SystemPosted, 401, 403, 404, 413, 503))
    async def system(session_id: SessionId, key: ApiKey, message: str | None = None) -> dict[str, Any]:
        if not message:
            raise InvalidInput("The message is missing; send text or a JSON object as the `message` query parameter.")
        owner = await runtime.session_app(session_id)
        await runtime.authorize(owner, key)
        return {"res": await runtime.call(session_id, "post_system", message, app=owner.spec.name)}

    @api.get("/api/sessions", response_model=None, responses=answers(list[SessionInfo], 422, 503))
    async def list_sessions(
        key: ApiKey, public_key: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS_LISTED)] = 50
    ) -> list[dict[str, Any]]:
        if not public_key:
            raise InvalidInput("public_key is missing; sessions are listed per public key.")
        visible = await runtime.visible_apps(key)
        return [i.model_dump(mode="json") for i in await runtime.list_sessions(visible, public_key, limit)]

    @api.post(
        "/api/sessions",
        dependencies=[Depends(json_content)],
        response_model=None,
        responses=answers(SessionCreated, 401, 403, 409, 415, 422, 503),
    )
    async def create_session(
        key: ApiKey,
        x_session_id: Annotated[str | None, SESSION_HEADER] = None,
        app: str | None = None,
        body: Annotated[CreateSession | None, Body()] = None,
    ) -> dict[str, Any]:
        body = body or CreateSession()
        session_id = check_session_id(body.session_id or x_session_id)
        for what, text in (("public_key", body.public_key), ("The title", body.title)):
            if text is not None:
                utf8_size(text, what)  # before anything is made: a lone surrogate cannot be stored
        actors = runtime.app(app or DEFAULT_APP)
        await runtime.authorize(actors, key)
        info = await runtime.call(session_id, "info", app=actors.spec.name, create=True, public_key=body.public_key)
        if body.title is not None:
            info = await runtime.call(session_id, "rename", body.title)
        return {"session_id": info.session_id, "title": info.title}

    @api.get("/api/sessions/{session_id}", response_model=None, responses=answers(SessionInfo, 404, 503))
    async def get_session(session_id: PathId) -> dict[str, Any]:
        return (await runtime.info(check_session_id(session_id))).model_dump(mode="json")

    @api.patch(
        "/api/sessions/{session_id}",
        dependencies=[Depends(json_content)],
        response_model=None,
        responses=answers(SessionCreated, 401, 403, 404, 415, 422, 503),
    )
    async def rename_session(
        session_id: PathId, key: ApiKey, body: Annotated[Rename | None, Body()] = None
    ) -> dict[str, Any]:
        check_session_id(session_id)
        if body is None or body.title is None:
            raise InvalidInput('The title is missing; send {"title": "..."}.')
        owner = await runtime.session_app(session_id)
        await runtime.authorize(owner, key)
        info = await runtime.call(session_id, "rename", body.title, app=owner.spec.name)
        return {"session_id": info.session_id, "title": info.title}

    @api.delete(
        "/api/sessions/{session_id}", response_model=None, responses=answers(SessionDeleted, 401, 403, 404, 503)
    )
    async def delete_session(session_id: PathId, key: ApiKey) -> dict[str, Any]:
        owner = await runtime.session_app(check_session_id(session_id))
        await runtime.authorize(owner, key)
        if not await runtime.delete(session_id, owner):
            raise SessionNotFound(f"No session {session_id!r} exists.")
        return {"deleted": True}

    async def archive(session_id: str, key: str | None, archived: bool) -> dict[str, Any]:
        owner = await runtime.session_app(check_session_id(session_id))
        await runtime.authorize(owner, key)
        info = await runtime.call(session_id, "set_archived", archived, app=owner.spec.name)
        return {"session_id": info.session_id, "is_archived": info.is_archived}

    archived = answers(SessionArchived, 401, 403, 404, 503)

    @api.post("/api/sessions/{session_id}/archive", response_model=None, responses=archived)
    async def archive_session(session_id: PathId, key: ApiKey) -> dict[str, Any]:
        return await archive(session_id, key, True)

    @api.post("/api/sessions/{session_id}/unarchive", response_model=None, responses=archived)
    async def unarchive_session(session_id: PathId, key: ApiKey) -> dict[str, Any]:
        return await archive(session_id, key, False)

    @api.get("/api/control/apps", response_model=None, responses=answers(list[str], 503))
    async def control_apps(key: ApiKey, public_key: str | None = None) -> list[str]:
        return await runtime.visible_apps(key)

    @api.get("/api/control/models", response_model=None, responses=answers(list[str], 401, 403, 503))
    async def control_models(key: ApiKey, app: str | None = None) -> list[str]:
        actors = runtime.app(app or DEFAULT_APP)
        await runtime.authorize(actors, key)  # a keyed App's model settings are its own
        return [m.label for m in actors.spec.models]

    @api.post("/api/control/model", response_model=None, responses=answers(ModelChosen, 401, 403, 409, 503))
    async def control_model(
        session_id: SessionId, key: ApiKey, rig: str | None = None, app: str | None = None
    ) -> dict[str, Any]:
        if not rig:
            raise InvalidInput("rig is missing; send a model label or slug from GET /api/control/models.")
        actors = runtime.app(app or DEFAULT_APP)
        await runtime.authorize(actors, key)
        if actors.spec.model(rig) is None:
            offered = ", ".join(m.slug for m in actors.spec.models)
            raise InvalidInput(f"Unknown model {rig!r}; the App {actors.spec.name!r} offers: {offered}.")
        slug = await runtime.call(session_id, "set_model", rig, app=actors.spec.name, create=True)
        return {"success": True, "rig": slug}

    return api
