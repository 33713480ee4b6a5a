"""The conversation: send a message, read the snapshot and the recent events, interrupt, post a system message."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic_core import to_json

from ...actors.pages import read_page
from ...actors.snapshot_copies import etag_of
from ...agent.errors import InvalidInput, SessionNotFound
from ...agent.records import EMPTY_SNAPSHOT, Message
from ...agent.tracing import current_traceparent
from ...agent.wallet import OUTCOME_TYPES
from ..auth import ChatApp, OwnApp, RuntimeDep, SystemMaker
from ..params import (
    DEFAULT_PAGE,
    MAX_CURSOR,
    MAX_PAGE,
    ClientId,
    SessionId,
    check_id,
    message_from_body,
    parse_user_state,
    system_type,
)
from ..schema import NOT_MODIFIED, EventPage, StreamEvent, SystemPosted, answers, snapshot_answers

router = APIRouter()

EMPTY_SNAPSHOT_JSON = EMPTY_SNAPSHOT.model_dump_json(exclude={"last_event_id"}).encode()
MAX_EVENTS = 10_000


NO_SYSTEM_EVENTS = b'"system_events":[]'
PEEK = (
    "Read as an onlooker (a console): hand out no system event (`system_events` is empty; they stay for the "
    "session's own client). Not with `user_state` or `client_id`."
)


def session_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def revalidated(body: bytes, if_none_match: str | None, etag: str | None = None, quiet: bool = False) -> Response:
    """A snapshot with its version as a strong ETag (a hash of all it holds), to be asked again each time
    (`Cache-Control: no-cache`): a poll naming that version in `If-None-Match` gets 304 and no body while nothing
    changed. Aomi's client polls the whole snapshot every 500 ms during a turn, and a browser's `fetch`
    revalidates this way on its own. A snapshot that hands out system events is never a 304: it is their one
    showing (and, as every system event comes with a new `last_event_id`, its version is new anyway). `quiet`:
    known to hand out none, so the body (last its `system_events`, after every message) is not searched."""
    etag = etag or etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    asked = {t.strip().removeprefix("W/") for t in (if_none_match or "").split(",")}
    if etag in asked and (quiet or NO_SYSTEM_EVENTS in body):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.post("/api/chat", response_model=None, responses=snapshot_answers(401, 403, 409, 413, 415, 422, 429, 503))
async def chat(
    request: Request,
    runtime: RuntimeDep,
    session_id: SessionId,
    app: ChatApp,
    client_id: ClientId,
    message: str | None = None,
    public_key: str | None = None,
    user_state: str | None = None,
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
    state = parse_user_state(user_state)
    # Limits are checked here, at the edge, before any actor is found or made; the session trusts them.
    app.spec.limits.check_message(message)
    if state is not None:
        app.spec.limits.check_user_state(state)
    body = await runtime.chat(
        session_id,
        message,
        app=app,
        user_state=state,
        public_key=public_key,
        request_id=request_id,
        client_id=client_id,
    )
    return session_json(body)


@router.get("/api/state", response_model=None, responses={**snapshot_answers(413, 503), 304: NOT_MODIFIED})
async def state(
    runtime: RuntimeDep,
    session_id: SessionId,
    client_id: ClientId,
    user_state: str | None = None,
    peek: Annotated[bool, Query(description=PEEK)] = False,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A `client_id` is bound only to a session bound to none: this route takes no key (see `LiveSession.bind`).
    The answer carries an `ETag`; `If-None-Match` naming it answers 304 while nothing changed."""
    given = parse_user_state(user_state)
    if peek and (given is not None or client_id is not None):
        raise InvalidInput("peek hands out and binds nothing: send it without user_state and client_id.")
    try:
        if given is None:  # changes nothing, or only the client bound: this replica's copy may answer
            copy = await runtime.read_state(session_id, client_id, peek=peek)
            return revalidated(copy.body, if_none_match, copy.etag, copy.quiet)
        # checked at the edge, as chat's is: the session stores what it is given
        owner = await runtime.owner(session_id)
        if owner is None:
            raise SessionNotFound(f"No session {session_id!r} exists.")
        owner.spec.limits.check_user_state(given)
        body: bytes = await runtime.call(session_id, "state", given, client_id, app=owner)
    except SessionNotFound:
        body = EMPTY_SNAPSHOT_JSON
    return revalidated(body, if_none_match)


@router.post("/api/interrupt", response_model=None, responses=snapshot_answers(404, 503))
async def interrupt(runtime: RuntimeDep, session_id: SessionId, app: OwnApp) -> Response:
    return session_json(await runtime.call(session_id, "interrupt", app=app))


LAST_EVENTS = 100
COUNT = f"The last N events, as a list (the default: the last {LAST_EVENTS}). Not with `after` or `limit`."
AFTER = "A page (ours): the events with seq above this, oldest first, as an object with the next page's `after`."
LIMIT = f"The most events in a page (default {DEFAULT_PAGE}); a page starts after 0 if `after` is not given."


@router.get("/api/events", response_model=None, responses=answers(list[StreamEvent] | EventPage, 404, 422, 503))
async def events(
    runtime: RuntimeDep,
    session_id: SessionId,
    count: Annotated[int | None, Query(ge=0, le=MAX_EVENTS, description=COUNT)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_CURSOR, description=AFTER)] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description=LIMIT)] = None,
) -> Any:
    """A page is read from the live session's memory, or from the store (the session is not loaded for it)."""
    if after is None and limit is None:
        return [e.data for e in await runtime.call(session_id, "last_events", LAST_EVENTS if count is None else count)]
    if count is not None:
        raise InvalidInput(
            "`count` (the last N events) does not go with `after` or `limit` (a page): send one or the other."
        )
    owner = await runtime.session_app(session_id)
    after = after or 0
    page = await read_page(runtime, owner, session_id, "events", after, limit or DEFAULT_PAGE)
    body = {"events": [e.data for e in page], "after": page[-1].seq if page else after}
    return Response(to_json(body), media_type="application/json")


@router.post("/api/system", response_model=None, responses=answers(SystemPosted, 401, 403, 409, 413, 429, 503))
async def system(maker: SystemMaker, message: str | None = None) -> dict[str, Any]:
    """Makes the session if it does not exist yet: the widget posts the wallet's state before a thread's first
    message; but for a wallet outcome, which answers a request of an existing session. The answer is the message
    as a snapshot shows one. All that would refuse the message is checked first: a refused one makes nothing."""
    if not message:
        raise InvalidInput("The message is missing; send text or a JSON object as the `message` query parameter.")
    maker.app.spec.limits.check_message(message)  # stored and shown to the model like a user's message
    outcome = system_type(message) in OUTCOME_TYPES
    try:
        # A wallet outcome's follow-up turn is a child of this request's span, as a chat message's turn is.
        posted: Message = await maker.call("post_system", message, current_traceparent(), make=not outcome)
    except SessionNotFound:
        if not outcome:
            raise
        raise InvalidInput(
            f"No session {maker.session_id!r} exists, so no wallet request of it is pending: a wallet outcome "
            "answers a request a session's tool made."
        ) from None
    return {"res": posted.model_dump(mode="json")}
