"""Request parameters, parsed and checked at the edge: session and request ids, `user_state`, bodies and queries."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Header, Path, Query, Request
from starlette.exceptions import HTTPException

from ..agent.errors import InvalidInput
from ..agent.records import is_valid_session_id
from ..agent.system_messages import parse_system_message
from .schema import SESSION_ID_SCHEMA


def check_id(value: str, what: str) -> str:
    if not is_valid_session_id(value):
        raise InvalidInput(f"The {what} is malformed: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'.")
    return value


def check_session_id(session_id: str | None) -> str:
    if not session_id:
        raise InvalidInput("The X-Session-Id header is missing; send the session's id in it.")
    return check_id(session_id, "session id")


# Optional to FastAPI, so that a missing id answers our 400 (docs/api.md), not its 422; the pattern is for the schema.
SESSION_HEADER = Header(description="The session's id, made by the client.", json_schema_extra=SESSION_ID_SCHEMA)
SESSION_PATH = Path(description="The session's id.", json_schema_extra=SESSION_ID_SCHEMA)
PathId = Annotated[str, SESSION_PATH]


DEFAULT_PAGE = 100
MAX_PAGE = 1_000
MAX_CURSOR = 2**31 - 1  # the range of stored message ids and event seqs (32-bit columns): beyond, no row is
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="The most items in one page.")]


# The dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop on
# every request.
async def session_header(x_session_id: Annotated[str | None, SESSION_HEADER] = None) -> str:
    return check_session_id(x_session_id)


SessionId = Annotated[str, Depends(session_header)]


async def client_id_query(client_id: str | None = None) -> str | None:
    return None if client_id is None else check_id(client_id, "client_id")


ClientId = Annotated[str | None, Depends(client_id_query)]
"""The optional `client_id` query parameter (the client whose secrets and provider keys a session uses), checked
as an id: 400 if malformed. Its pattern is in the OpenAPI description (`schema.IDS`)."""


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
    shape, where `docs/api.md` gives 415 for a body without the JSON content type."""
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


def system_type(message: str) -> str | None:
    """The event type of a message posted to `/api/system` (None for text), checked before the session is found
    or made, so that a refused message makes nothing (the session checks again, as it is also called directly)."""
    return parse_system_message(message)[1]
