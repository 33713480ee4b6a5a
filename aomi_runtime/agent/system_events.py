"""A session's system events: what its client posts to `/api/system` (checked by `system_messages.py`), told to
the model next turn, and the events pending for the client, handed out once, with the snapshot that takes them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from .journal import Journal
from .records import Message, SystemEvent, inline_call, system_notice
from .system_messages import parse_system_message
from .wallet import OUTCOME_TYPES, WalletDesk


class SystemEvents:
    """One session's system events, in its journal's record."""

    def __init__(
        self, journal: Journal, wallet: WalletDesk, follow_up: Callable[[str | None], Awaitable[None]]
    ) -> None:
        self._journal = journal
        self._wallet = wallet
        self._follow_up = follow_up

    async def post(self, message: str, traceparent: str | None = None) -> Message:
        """Text becomes a `system_notice`; a JSON object is published as-is. The model sees either next turn.
        Returns the message as a snapshot shows one (sender `system`, the text as posted), as Aomi answers it.

        A wallet outcome (`wallet:tx_complete`, `wallet_eip712_response`) answers its pending request: it becomes
        the tool call's result and starts a follow-up turn (its spans children of the span `traceparent` names, if
        it starts at once); a duplicate of an outcome taken has no effect.
        """
        record = self._journal.record
        posted = Message(sender="system", content=message)
        parsed, type_ = parse_system_message(message)
        if parsed is not None and type_ is not None:
            outcome = type_ in OUTCOME_TYPES
            if outcome and not self._wallet.answer(type_, parsed.get("payload")):
                return posted  # answered once already
            self._journal.event(type_, **{k: v for k, v in parsed.items() if k not in ("type", "session_id")})
            record.pending_system_events.append(inline_call(type_, parsed))
            if outcome:
                await self._follow_up(traceparent)  # stored with the outcome, in one commit
                return posted
            record.model_notes.append(json.dumps(parsed, ensure_ascii=False))
        else:
            self._journal.event("system_notice", message=message)
            record.pending_system_events.append(system_notice(message))
            record.model_notes.append(message)
        await self._journal.flush()
        return posted

    def take(self) -> list[SystemEvent]:
        """The events pending for the client, handed out: stored as taken with the next commit."""
        record = self._journal.record
        # Taken whole, the empty list too: events added during the snapshot's flush stay for the next snapshot.
        events, record.pending_system_events = record.pending_system_events, []
        if events:
            self._journal.record_changed()
        return events

    def give_back(self, events: list[SystemEvent]) -> None:
        """Events taken by a read that failed: pending again, ahead of any added since."""
        self._journal.record.pending_system_events[:0] = events
