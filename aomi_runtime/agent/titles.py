"""The automatic title: after a session's first turn, the App's model names the conversation."""

from __future__ import annotations

from collections.abc import Sequence

from .protocols import ModelProvider, ModelRequest, TextDelta
from .records import Message
from .turn import to_model_messages

TITLE_INSTRUCTION = (
    "Give this conversation a short title of at most six words. Answer with the title alone, without quotes."
)
AUTO_TITLE_CHARS = 80  # a generated title is short; a title given by hand may run to MAX_TITLE_CHARS
TITLE_CONTEXT_MESSAGES = 6


def clean_title(text: str) -> str:
    """First line, no surrounding quotes or trailing period, at most `AUTO_TITLE_CHARS` characters."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line.strip("\"'`*# ").rstrip(".").strip()
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
