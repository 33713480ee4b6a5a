"""A session's messages as a pandas DataFrame (pandas imported only when a frame is asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..agent.records import Message

if TYPE_CHECKING:
    import pandas


def messages_frame(messages: list[Message]) -> pandas.DataFrame:
    """Messages as a table: one row each, a column per field, the tool result split into topic and text."""
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install pandas") from None
    rows = [
        {
            "id": m.id,
            "sender": m.sender,
            "content": m.content,
            "tool_topic": m.tool_result[0] if m.tool_result else None,
            "tool_result": m.tool_result[1] if m.tool_result else None,
            "timestamp": m.timestamp,
            "is_streaming": m.is_streaming,
            "queued": m.queued,
            "request_id": m.request_id,
        }
        for m in messages
    ]
    columns = ["id", "sender", "content", "tool_topic", "tool_result", "timestamp", "is_streaming", "queued"]
    return pandas.DataFrame(rows, columns=[*columns, "request_id"])
