"""One turn as the client saw it (`Reply`), and when a turn counts as over."""

from __future__ import annotations

from dataclasses import dataclass

from ..agent.records import Event, Message, Snapshot
from ..agent.timings import Timings


@dataclass(frozen=True)
class Reply:
    """One turn, as `send` saw it: the snapshot after it (its `system_events` are all those handed out while
    `send` ran: they are handed out once), the events it streamed, and how long it took."""

    request_id: str
    snapshot: Snapshot
    events: tuple[Event, ...]
    seconds: float

    @property
    def messages(self) -> list[Message]:
        """This turn's messages: the user's, then the agent's (text and tool results)."""
        turn: list[Message] = []
        for m in self.snapshot.messages:
            if m.request_id == self.request_id:
                turn.append(m)
            elif turn and m.sender == "user":
                break
            elif turn:
                turn.append(m)
        return turn

    @property
    def text(self) -> str:
        """The agent's last text of this turn (empty if it only called tools, or was stopped)."""
        said = [m.content for m in self.messages if m.sender == "agent" and m.tool_result is None and m.content]
        return said[-1] if said else ""

    @property
    def done(self) -> Event | None:
        """The turn's `processing_done` event (None if the turn was over before `send` began to follow it)."""
        return next((e for e in self.events if ends_turn(e, self.request_id)), None)

    @property
    def timings(self) -> Timings | None:
        """Where the turn's time went, as the runtime recorded it: its duration and its model calls, tool calls and
        commits (None if `send` did not see the turn end, or the message got no turn)."""
        done = self.done
        return None if done is None or "timings" not in done.data else Timings.model_validate(done.data["timings"])

    @property
    def error(self) -> str | None:
        """What went wrong in the turn (the model failing, a turn cut short), or None."""
        if self.done is not None:
            return self.done.data.get("error")
        # The turn was over before `send` followed it: its error, if any, was handed out as a system event.
        return next((str(e["SystemError"]) for e in self.snapshot.system_events if "SystemError" in e), None)

    @property
    def interrupted(self) -> bool:
        """Whether an interrupt stopped the turn, or left the message unanswered (it was queued behind the turn
        the interrupt stopped, so no turn ran for it)."""
        return self.done is not None and ended_by_interrupt(self.done)


def ends_turn(event: Event, request_id: str) -> bool:
    """Whether `event` is the `processing_done` of the turn of the message sent with `request_id`."""
    return event.type == "processing_done" and event.data.get("request_id") == request_id


def ended_by_interrupt(done: Event) -> bool:
    """Whether a `processing_done` says an interrupt stopped its turn or left its message without one."""
    return bool(done.data.get("interrupted") or done.data.get("unanswered"))


def turn_finished(snapshot: Snapshot, request_id: str) -> bool:
    """Whether the turn of the message sent with `request_id` is over in `snapshot`: started (not queued), and
    either the session idle or a later message's turn started."""
    for i, m in enumerate(snapshot.messages):
        if m.request_id == request_id:
            if m.queued:
                return False
            later = snapshot.messages[i + 1 :]
            return not snapshot.is_processing or any(n.sender == "user" and not n.queued for n in later)
    return False
