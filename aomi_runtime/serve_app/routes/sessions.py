"""Sessions as a resource: list a public key's sessions, create one, read, rename, archive and delete it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ...actors.app_actors import AppActors
from ...actors.pages import read_page
from ...actors.runtime import Runtime
from ...agent.apps import utf8_size
from ...agent.errors import InvalidInput
from ...agent.records import SessionInfo
from ..auth import ApiKey, KeysDep, Maker, OwnAppByPath, RuntimeDep, VisibleApps
from ..params import DEFAULT_PAGE, MAX_CURSOR, SESSION_HEADER, PageLimit, PathId, check_session_id, json_content
from ..schema import NOT_BLANK, MessagePage, SessionArchived, SessionCreated, SessionDeleted, answers

router = APIRouter()

MAX_SESSIONS_LISTED = 500


class CreateSession(BaseModel):
    # Tolerated in the body, but not in the API (the header carries the id): kept out of the schema.
    session_id: SkipJsonSchema[str | None] = None
    public_key: str | None = None
    title: Annotated[str | None, Field(json_schema_extra=NOT_BLANK)] = None


class Rename(BaseModel):
    # Optional here so that a missing title answers our 400, not FastAPI's 422; required in the schema.
    model_config = ConfigDict(json_schema_extra={"required": ["title"]})

    title: Annotated[str | None, Field(json_schema_extra=NOT_BLANK)] = None


@router.get("/api/sessions", response_model=None, responses=answers(list[SessionInfo], 422, 503))
async def list_sessions(
    runtime: RuntimeDep,
    visible: VisibleApps,
    public_key: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS_LISTED)] = 50,
) -> list[dict[str, Any]]:
    if not public_key:
        raise InvalidInput("public_key is missing; sessions are listed per public key.")
    return [i.model_dump(mode="json") for i in await runtime.list_sessions(visible, public_key, limit)]


JSON_BODY = [Depends(json_content)]
CREATED = answers(SessionCreated, 401, 403, 409, 415, 422, 429, 503)
RENAMED = answers(SessionCreated, 404, 415, 422, 503)


@router.post("/api/sessions", dependencies=JSON_BODY, response_model=None, responses=CREATED)
async def create_session(
    runtime: RuntimeDep,
    keys: KeysDep,
    key: ApiKey,
    app: str | None = None,
    x_session_id: Annotated[str | None, SESSION_HEADER] = None,
    body: Annotated[CreateSession | None, Body()] = None,
) -> dict[str, Any]:
    """Makes the session (in the App named, `default` if none; a keyed App's key needed), or warms a stored one in
    its own App (the widget names no App: its id is enough)."""
    body = body or CreateSession()
    session_id = check_session_id(body.session_id or x_session_id)
    maker = await Maker.of(runtime, keys, session_id, app, key)
    for what, text in (("public_key", body.public_key), ("The title", body.title)):
        if text is not None:
            utf8_size(text, what)  # before anything is made: a lone surrogate cannot be stored
    info = await maker.call("info", public_key=body.public_key)
    if body.title is not None:
        info = await runtime.call(session_id, "rename", body.title)
    return {"session_id": info.session_id, "title": info.title}


@router.get("/api/sessions/{session_id}", response_model=None, responses=answers(SessionInfo, 404, 503))
async def get_session(runtime: RuntimeDep, session_id: PathId) -> dict[str, Any]:
    return (await runtime.info(check_session_id(session_id))).model_dump(mode="json")


BEFORE = "The `before` of the page read last: the page of messages older than it. Absent: the newest page."


@router.get("/api/sessions/{session_id}/messages", response_model=None, responses=answers(MessagePage, 404, 503))
async def messages_page(
    runtime: RuntimeDep,
    session_id: PathId,
    app: OwnAppByPath,
    before: Annotated[int | None, Query(ge=0, le=MAX_CURSOR, description=BEFORE)] = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> Response:
    """The session's messages a page at a time, newest page first, each in message order (queued messages, with
    no id yet, are in the snapshot only). Read from the live session's memory, or from the store (the session is
    not loaded for it)."""
    page = await read_page(runtime, app, session_id, "messages", before, limit + 1)  # one more: are there older?
    older = len(page) > limit
    page = page[-limit:]
    body = MessagePage(messages=page, before=page[0].id if older else None)
    return Response(body.model_dump_json(), media_type="application/json")


@router.patch("/api/sessions/{session_id}", dependencies=JSON_BODY, response_model=None, responses=RENAMED)
async def rename_session(
    runtime: RuntimeDep, session_id: PathId, app: OwnAppByPath, body: Annotated[Rename | None, Body()] = None
) -> dict[str, Any]:
    if body is None or body.title is None:
        raise InvalidInput('The title is missing; send {"title": "..."}.')
    info = await runtime.call(session_id, "rename", body.title, app=app)
    return {"session_id": info.session_id, "title": info.title}


@router.delete("/api/sessions/{session_id}", response_model=None, responses=answers(SessionDeleted, 503))
async def delete_session(runtime: RuntimeDep, session_id: PathId) -> dict[str, Any]:
    """Idempotent: an id never stored (a thread the widget made and never chatted in) answers `deleted: false`."""
    return {"deleted": await runtime.delete(check_session_id(session_id))}


ARCHIVED = answers(SessionArchived, 404, 503)


@router.post("/api/sessions/{session_id}/archive", response_model=None, responses=ARCHIVED)
async def archive_session(runtime: RuntimeDep, session_id: PathId, app: OwnAppByPath) -> dict[str, Any]:
    return await _set_archived(runtime, session_id, app, True)


@router.post("/api/sessions/{session_id}/unarchive", response_model=None, responses=ARCHIVED)
async def unarchive_session(runtime: RuntimeDep, session_id: PathId, app: OwnAppByPath) -> dict[str, Any]:
    return await _set_archived(runtime, session_id, app, False)


async def _set_archived(runtime: Runtime, session_id: str, app: AppActors, archived: bool) -> dict[str, Any]:
    info = await runtime.call(session_id, "set_archived", archived, app=app)
    return {"session_id": info.session_id, "is_archived": info.is_archived}
