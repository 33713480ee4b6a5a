"""The shapes a session is made of, as `docs/api.md` gives them: messages, snapshots, events, records."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TITLE = "New Chat"
MAX_TITLE_CHARS = 200  # of any title, a user's own or generated
SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")

SystemEvent = dict[str, Any]
"""An externally tagged system event: `{"SystemError": "text"}`, `{"SystemNotice": "text"}`, `{"InlineCall": {...}}`."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    """A request id where the client chose none: it makes a retried chat add its message once."""
    return uuid.uuid4().hex


def is_valid_session_id(session_id: str) -> bool:
    return SESSION_ID_PATTERN.fullmatch(session_id) is not None


class ToolCall(BaseModel):
    """A tool call as the model asked for it; kept on the tool result message so the model sees it again."""

    id: str
    call_id: str | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of a conversation, in the shape clients expect.

    Our additions: `id`, its place in the session (None while queued); `tool_call`, the call behind a tool
    result; `queued`, true for a message acknowledged during a turn and waiting for its own; `unanswered`, true
    for a user message that was queued when the user interrupted, so no turn ran for it.
    """

    id: int | None = None
    sender: Literal["user", "agent", "system"]
    content: str = ""
    tool_result: tuple[str, str] | None = None
    timestamp: datetime = Field(default_factory=utcnow)
    is_streaming: bool = False
    tool_call: ToolCall | None = None
    queued: bool = False
    request_id: str | None = None
    unanswered: bool = False


class QueuedMessage(BaseModel):
    """A user message acknowledged while a turn was running; it gets its turn in arrival order.

    A `follow_up` has no text of its own: its turn answers what arrived since (a wallet's outcome, a background
    tool's result) and adds no user message.
    """

    content: str
    timestamp: datetime = Field(default_factory=utcnow)
    request_id: str | None = None
    follow_up: bool = False


class WalletRequest(BaseModel):
    """A tool's request to the user's wallet, waiting for its outcome (posted to /api/system) or answered.

    `kind` is `tx` (transactions, one id each) or `eip712` (one signature); `staged` maps each id, as a string,
    to the entry staged in the session's user_state; `outcome` is the payload posted, once answered.
    """

    kind: Literal["tx", "eip712"]
    ids: list[int]
    call: ToolCall
    staged: dict[str, dict[str, Any]]
    outcome: dict[str, Any] | None = None


class BackgroundCall(BaseModel):
    """A tool call running in the background; stored until it ends, so that a crash ends it with an error."""

    call: ToolCall
    topic: str
    starts_turn: bool = False


class Snapshot(BaseModel):
    """A session as clients see it: every message, the system events not yet handed out, title and state.

    Our addition: `last_event_id`, the seq of the last event on the session's stream when the snapshot was
    taken, so a client can follow what happens next (`GET /api/updates?after=`) without missing or repeating
    an event. Absent from the empty snapshot of an unknown session.
    """

    messages: list[Message] = Field(default_factory=list)
    system_events: list[SystemEvent] = Field(default_factory=list)
    title: str | None = None
    is_processing: bool = False
    user_state: dict[str, Any] | None = None
    last_event_id: int | None = None


EMPTY_SNAPSHOT = Snapshot()


class Event(BaseModel):
    """One event of a session's log: `seq` rises by one per event; `data` is the JSON sent on the stream."""

    model_config = ConfigDict(frozen=True)

    seq: int
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))


class SessionRecord(BaseModel):
    """What is stored of a session besides its messages and events."""

    session_id: str
    app: str
    public_key: str | None = None  # the wallet of the newest request that named one: sessions are listed by it
    client_id: str | None = None  # the client (a browser, a CLI) of the newest request that named one
    title: str = DEFAULT_TITLE
    title_is_manual: bool = False
    is_archived: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    user_state: dict[str, Any] | None = None
    model: str | None = None
    last_seq: int = 0
    is_processing: bool = False
    pending_system_events: list[SystemEvent] = Field(default_factory=list)
    model_notes: list[str] = Field(default_factory=list)
    queue: list[QueuedMessage] = Field(default_factory=list)
    follow_up_running: bool = False  # the running turn is a follow-up: a restore runs it again (it has no message)
    wallet_requests: list[WalletRequest] = Field(default_factory=list)
    last_wallet_id: int = 0
    background: list[BackgroundCall] = Field(default_factory=list)


class SessionInfo(BaseModel):
    """A session as the `/api/sessions` routes list it."""

    session_id: str
    title: str
    is_archived: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: SessionRecord) -> SessionInfo:
        return cls(
            session_id=record.session_id,
            title=record.title,
            is_archived=record.is_archived,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class StoredSession(BaseModel):
    """Everything a session is rebuilt from: its record and all its messages."""

    record: SessionRecord
    messages: list[Message] = Field(default_factory=list)


class Commit(BaseModel):
    """One atomic write of a session: its record, messages to upsert (by id) and events to append."""

    record: SessionRecord
    messages: list[Message] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


def system_error(text: str) -> SystemEvent:
    return {"SystemError": text}


def system_notice(text: str) -> SystemEvent:
    return {"SystemNotice": text}


def inline_call(type_: str, payload: Any, **extra: Any) -> SystemEvent:
    return {"InlineCall": {"type": type_, **extra, "payload": payload}}


INTERRUPTION = inline_call("user_request", "Interrupted by user", kind="Interruption")
