"""The automatic title: after a session's first turn, the App's model names the conversation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .apps import App, utf8_size
from .errors import InvalidInput
from .journal import Journal
from .logs import fingerprint, log_failure
from .protocols import ModelProvider, ModelRequest, TextDelta
from .records import DEFAULT_TITLE, MAX_TITLE_CHARS, Message
from .secrets import for_client
from .turn import to_model_messages

log = logging.getLogger(__name__)

TITLE_INSTRUCTION = (
    "Give this conversation a short title of at most six words. Answer with the title alone, without quotes."
)


def manual_title(title: str) -> str:
    """A title given by hand, stripped. Raises `InvalidInput` for an empty or too long one."""
    title = title.strip()
    utf8_size(title, "The title")
    if not title or len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"A title is 1 to {MAX_TITLE_CHARS} characters, not only spaces.")
    return title


AUTO_TITLE_CHARS = 80  # a generated title is short; a title given by hand may run to MAX_TITLE_CHARS
TITLE_CONTEXT_MESSAGES = 6


def clean_title(text: str) -> str:
    """First line, no surrounding quotes or trailing period, at most `AUTO_TITLE_CHARS` characters."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line.strip("\"'`*# ").rstrip(".").strip('"` ')  # again: a quote may stand before the period
    if len(line) > AUTO_TITLE_CHARS:
        line = line[: AUTO_TITLE_CHARS - 1].rstrip() + "…"
    return line


async def generate_title(model: ModelProvider, messages: Sequence[Message]) -> str:
    """Ask `model` for a title of the conversation's opening; empty if it gave none."""
    request = ModelRequest(
        system=TITLE_INSTRUCTION,
        messages=to_model_messages(messages)[:TITLE_CONTEXT_MESSAGES],
        purpose="title",
    )
    pieces = [chunk.text async for chunk in model.stream(request) if isinstance(chunk, TextDelta)]
    return clean_title("".join(pieces))


class AutoTitle:
    """One session's automatic title, made in a task of its own after a turn while the session has none."""

    def __init__(self, app: App, journal: Journal) -> None:
        self.task: asyncio.Task[None] | None = None
        self._app = app
        self._journal = journal

    @property
    def is_running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        """Start making a title, unless the session has one (given by hand or made already) or one is being made."""
        record = self._journal.record
        if record.title_is_manual or record.title != DEFAULT_TITLE:
            return
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._make(), name=f"title:{record.session_id}")

    async def _make(self) -> None:
        journal, record = self._journal, self._journal.record
        try:
            async with for_client(self._app, record) as app:  # the client's own key, if it set one
                title = await generate_title(app.provider(record.model), journal.messages)
        except Exception as exc:  # a title is a nicety: a failing model must not break the session
            log_failure(log, f"title of session {fingerprint(record.session_id)}", exc, logging.WARNING)
            return
        if not title or record.title_is_manual or journal.closed:
            return
        record.title = title
        journal.event("title_changed", new_title=title)
        await journal.flush()
