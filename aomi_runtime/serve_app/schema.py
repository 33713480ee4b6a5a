"""What the routes answer, for the OpenAPI description at `/openapi.json`: response models and error answers.

The models describe answers; the routes do not validate through them (snapshots leave the session actor as
JSON bytes and go out as they are), so each route names its model in `responses=` with `response_model=None`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..agent.records import SESSION_ID_PATTERN, Message, Snapshot

Answers = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and what to do."""

    error: str = Field(min_length=1)


class SessionCreated(BaseModel):
    session_id: str
    title: str


class SessionArchived(BaseModel):
    session_id: str
    is_archived: bool


class SessionDeleted(BaseModel):
    deleted: bool


class SecretHandles(BaseModel):
    handles: dict[str, str] = Field(description='Each name sent, with the handle "$SECRET:<name>" that stands for it.')


class SecretsCleared(BaseModel):
    cleared: int = Field(description="How many secrets the client had.")


class ProviderKey(BaseModel):
    provider: str
    key_prefix: str = Field(description="A few characters of the key, never more than a quarter of it.")
    label: str
    is_active: bool = Field(description="Whether the session's model is called with this key.")


class ProviderKeys(BaseModel):
    provider_keys: list[ProviderKey]


class ProviderKeySet(BaseModel):
    key: ProviderKey


class ModelChosen(BaseModel):
    success: bool
    rig: str = Field(description="The slug of the model later turns use.")
    baml: None = Field(description="Aomi's BAML client for the model; this runtime has none, so always null.")
    created: bool = Field(description="Whether this call made the session (it did not exist before).")


class SystemPosted(BaseModel):
    res: Message = Field(description="The message as a snapshot shows one: sender `system`, the text as posted.")


class StreamEvent(BaseModel):
    """An event as sent on `GET /api/updates`: its `type`, its session, and the fields of its type."""

    model_config = ConfigDict(extra="allow")

    type: str
    session_id: str


class EventPage(BaseModel):
    """A page of a session's events (`GET /api/events?after=`)."""

    events: list[StreamEvent] = Field(
        description="Events with seq above `after`, oldest first, each as sent on the stream: the event log's seq "
        "rises by one per event, so the i-th (from 0) is event `after + 1 + i`."
    )
    after: int = Field(
        description="The seq of the page's last event (`after` as sent, for an empty page): send it as `after` for "
        "the next page. A page shorter than `limit` reached the newest event."
    )


class MessagePage(BaseModel):
    """A page of a session's messages (`GET /api/sessions/{id}/messages`), newest page first."""

    messages: list[Message] = Field(description="Messages with an id below `before`, the newest `limit`, in order.")
    before: int | None = Field(
        description="Send it as `before` for the previous (older) page; null once this page holds the first message."
    )


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


WHY: dict[int, str] = {
    400: "Malformed input: a missing or malformed session id, a missing field, a body or query that is not valid "
    "JSON or UTF-8, an unknown App or model.",
    401: "The App needs a key (X-API-Key) and none was sent.",
    403: "The key is unknown, revoked, or scoped to another App.",
    404: "No such session.",
    409: "The session belongs to another App.",
    413: "The message or user_state is larger than the App's limit.",
    415: "A body was sent without Content-Type: application/json.",
    422: "A value of the wrong type or out of range.",
    429: "A limit is reached: the App holds its limits.max_sessions (a new session), or the session has its "
    "AOMI_MAX_STREAMS_PER_SESSION streams open (a new stream).",
    500: "An internal error; it was logged.",
    501: "The App offers no such feature: it names no simulator.",
    503: "The session's process stopped, no node had room for it, or the history database failed; nothing was "
    "lost, try again.",
}
SESSION_ID_SCHEMA = {"pattern": f"^{SESSION_ID_PATTERN.pattern}$"}


ERROR_SCHEMA = ErrorBody.model_json_schema()


def errors(*statuses: int) -> Answers:
    """Error answers with these statuses, 400 (any route: a query string that is not UTF-8) and 500 (any route:
    an internal error). Their content is given, not their model: FastAPI would give a model the route's own media
    type (text on /health)."""
    return {
        s: {"description": WHY[s], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for s in sorted({400, 500, *statuses})
    }


def answers(model: Any, *statuses: int, description: str = "Success.") -> Answers:
    """The 200 answer with its model, and the error answers: these statuses, 400, and 422 (a query parameter of
    the wrong type; documented here, FastAPI would otherwise describe its own validation error body)."""
    return {200: {"model": model, "description": description}, **errors(422, *statuses)}


NOT_MODIFIED = {"description": "Nothing changed since the snapshot whose ETag was sent in If-None-Match; no body."}


def snapshot_answers(*statuses: int) -> Answers:
    return answers(Snapshot, *statuses, description="The session's snapshot.")


def text_answers(media_type: str, description: str, *statuses: int) -> Answers:
    return {
        200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description},
        **errors(*statuses),
    }


# What a route refuses with 400 when absent, though FastAPI sees it as optional (so that the answer is our 400,
# not its 422): (path, method) -> names of parameters. The session header is required wherever it is taken.
REQUIRED: dict[tuple[str, str], set[str]] = {
    ("/api/chat", "post"): {"message"},
    ("/api/system", "post"): {"message"},
    ("/api/sessions", "get"): {"public_key"},
    ("/api/control/model", "post"): {"rig"},
    ("/api/secrets", "delete"): {"client_id"},
    ("/api/secrets/{name}", "delete"): {"client_id"},
}
IDS = ("request_id", "client_id")  # written like a session id
NOT_BLANK = {"pattern": r"\S"}  # text that is not only whitespace


def required_string(schema: dict[str, Any]) -> dict[str, Any]:
    """`str | None` with its constraints, as `str` with them: the null was only FastAPI's default."""
    return {"type": "string", **{k: v for k, v in schema.items() if k not in ("anyOf", "title")}}


def describe(api: FastAPI, app_names: list[str]) -> None:
    """Make `/openapi.json` say what the routes check by hand: required parameters, the App names, ids."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()
            for path, item in schema["paths"].items():
                for method, operation in item.items():
                    required = REQUIRED.get((path, method), set()) | {"x-session-id"}
                    for parameter in operation.get("parameters", []):
                        name = parameter["name"]
                        if name in required:
                            parameter["required"] = True
                            parameter["schema"] = required_string(parameter["schema"])
                        if name in ("app", "namespace"):
                            parameter["schema"] = {"anyOf": [{"type": "string", "enum": app_names}, {"type": "null"}]}
                        if name == "message" or name in IDS:
                            parameter["schema"].update(NOT_BLANK if name == "message" else SESSION_ID_SCHEMA)
            for path, method in (("/api/sessions/{session_id}", "patch"), ("/api/secrets", "post")):
                schema["paths"][path][method]["requestBody"]["required"] = True
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to give its own schema
