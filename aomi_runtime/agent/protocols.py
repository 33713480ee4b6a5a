"""The two protocols the backends implement: where history is kept, and the model that answers."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from .records import Commit, Event, Message, SessionRecord, StoredSession

# --- history ------------------------------------------------------------------------------------


@runtime_checkable
class HistoryBackend(Protocol):
    """Durable storage of sessions, their messages and their event logs.

    Every method is scoped by App: a session of another App is, to each method, a session that does not
    exist, except to `commit`, which refuses to take over another App's session id. Every write is
    idempotent (upserts keyed by session id, message id and event seq), so a retried write is harmless.
    """

    async def setup(self) -> None:
        """Create what the backend needs (tables, indexes). Idempotent."""

    async def close(self) -> None:
        """Release connections. The backend is not used afterwards."""

    async def commit(self, app: str, commit: Commit) -> None:
        """Store the record, upsert the messages by id and append the events, atomically.

        Raises:
            AppMismatch: the session id belongs to another App.
            StorageError: nothing was stored.
        """

    async def load(self, app: str, session_id: str) -> StoredSession | None:
        """Return the session's record and all its messages in order, or None if it is not stored."""

    async def get(self, app: str, session_id: str) -> SessionRecord | None:
        """Return the session's record alone, or None."""

    async def list(self, app: str, public_key: str | None, limit: int) -> builtins.list[SessionRecord]:
        """Return up to `limit` records bound to `public_key`, most recently active first."""

    async def messages(self, app: str, session_id: str, before: int | None, limit: int) -> builtins.list[Message]:
        """Return the newest `limit` messages with an id below `before` (any id if None), in message order: a page
        of the history, read backward from the newest (`GET /api/sessions/{id}/messages`)."""

    async def events(self, app: str, session_id: str, after: int, limit: int) -> builtins.list[Event]:
        """Return up to `limit` events with seq greater than `after`, oldest first."""

    async def last_events(self, app: str, session_id: str, count: int) -> builtins.list[Event]:
        """Return the last `count` events, oldest first."""

    async def delete(self, app: str, session_id: str) -> bool:
        """Delete the session with its messages and events. Return whether it existed."""

    async def stale(self, app: str, before: datetime, limit: int) -> builtins.list[str]:
        """Return up to `limit` ids of sessions last active before `before`, oldest first (for retention)."""

    async def owner(self, session_id: str) -> str | None:
        """Return the App a session id belongs to, or None. Reveals nothing but the App's name."""

    async def count(self, app: str) -> int:
        """Return how many sessions an App has stored (for its `max_sessions` limit)."""


@runtime_checkable
class BatchCommits(Protocol):
    """Optional, beside `HistoryBackend`: many sessions' commits in one transaction (group commit)."""

    async def commit_batch(self, app: str, commits: Sequence[Commit]) -> None:
        """Store every commit as `commit` would, all in one transaction: all of them, or none.

        Raises:
            AppMismatch: a session id belongs to another App; nothing was stored.
            StorageError: nothing was stored.
        """


@runtime_checkable
class LoadsJson(Protocol):
    """Optional, beside `HistoryBackend`: a stored session handed over as JSON, without building its models."""

    async def load_json(self, app: str, session_id: str) -> bytes | None:
        """Return what `load` would, as the JSON of a `StoredSession` (UTF-8), or None if it is not stored."""


# --- models -------------------------------------------------------------------------------------


class ModelMessage(BaseModel):
    """One entry of the conversation as a model reads it (OpenAI's chat roles)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class ToolSpec(BaseModel):
    """A tool as the model is told about it."""

    name: str
    description: str
    parameters: dict[str, Any]


class ModelRequest(BaseModel):
    """What the turn engine asks a model: the conversation so far, the tools it may call, and why."""

    system: str = ""
    messages: list[ModelMessage] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    purpose: Literal["turn", "title"] = "turn"


class TextDelta(BaseModel):
    """A piece of the reply's text."""

    kind: Literal["text"] = "text"
    text: str


class ToolCallRequest(BaseModel):
    """The model asks for a tool to run."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Usage(BaseModel):
    """The tokens a model call took, as its provider reports them (after its last text or tool call)."""

    kind: Literal["usage"] = "usage"
    input_tokens: int | None = None
    output_tokens: int | None = None


ModelChunk = TextDelta | ToolCallRequest | Usage


class ModelProvider(Protocol):
    """A model that streams its reply as text pieces and tool calls."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Stream the reply to `request`.

        Raises:
            ModelUnavailable: the provider failed; the text already streamed stays.
        """
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (its SDK client's connections). Its owner, the App's session actor,
        calls it when it stops; the provider is not used afterwards."""


ModelMessage.model_rebuild()
