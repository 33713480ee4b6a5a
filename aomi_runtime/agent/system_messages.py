"""What a client may post to `/api/system`: text (a notice) or a JSON object published under its own type, except
the types the runtime emits itself. Checked at the edge, before a session is found or made, and by the session."""

from __future__ import annotations

import json
from typing import Any

from .apps import compact_json, utf8_size
from .errors import InvalidInput

RUNTIME_EVENTS = frozenset(
    {
        "processing_started",
        "processing_done",
        "message",
        "title_changed",
        "tool_update",
        "tool_complete",
        "system_notice",
    }
)


def parse_system_message(message: str) -> tuple[dict[str, Any] | None, str | None]:
    """A message posted to `/api/system`: a JSON object and its event type (`system` if it names none), or
    (None, None) for text.

    Raises:
        InvalidInput: the type is one the runtime emits itself (readers of the stream, the Python client among
            them, trust those to come from the runtime), or an escape decodes to a lone surrogate.
    """
    try:
        parsed = json.loads(message)
    except ValueError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    utf8_size(compact_json(parsed), "The message")
    named = parsed.get("type")
    type_ = named if isinstance(named, str) else "system"
    if type_ in RUNTIME_EVENTS:
        raise InvalidInput(f"The event type {type_!r} is the runtime's own; post it under another type.")
    return parsed, type_
