"""The Python client's turn progress line: what it shows of each tool call from the turn's events."""

from __future__ import annotations

from aomi_runtime.agent.records import Event
from aomi_runtime.client.progress import TurnProgress


class Shown:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def show(self, text: str, fraction: float | None) -> None:
        self.lines.append(text)

    def close(self) -> None:
        pass


def test_a_quick_call_shows_from_its_message_and_a_reporting_one_from_its_tool_events() -> None:
    shown = Shown()
    progress = TurnProgress(shown)
    call = {"id": "tool_1", "name": "time_now", "arguments": {}}
    message = {"sender": "agent", "content": "", "tool_result": ["time_now", "noon"], "tool_call": call}
    progress.update(Event(seq=1, data={"type": "message", "message": message}))
    update = {"id": "tool_2", "call_id": None, "tool_name": "long_task", "result": {"step": 1, "of": 2}}
    progress.update(Event(seq=2, data={"type": "tool_update", **update}))
    progress.update(Event(seq=3, data={"type": "message", "message": {"sender": "agent", "content": "hi"}}))
    assert "time_now [####################] done" in shown.lines[-1]
    assert "long_task [##########..........] 1/2" in shown.lines[-1]
