"""Where a session's turns put what they make (the `TurnSink` the turn engine writes to): text and tool results
through the journal, wallet requests to the wallet desk, background calls to their runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .background import BackgroundCalls
from .journal import Journal
from .records import ToolCall
from .tools import Progress
from .wallet import WalletDesk


class TurnOutput:
    """The turn sink of one session."""

    def __init__(self, journal: Journal, wallet: WalletDesk, background: BackgroundCalls) -> None:
        self._journal = journal
        self._wallet = wallet
        self._background = background

    def append_text(self, text: str) -> None:
        self._journal.append_text(text)

    async def end_text(self) -> None:
        if self._journal.finish_streaming():
            await self._journal.flush(turn=True)

    async def add_tool_result(self, call: ToolCall, topic: str, text: str) -> None:
        self._journal.add_tool_result(call, topic, self._wallet.result_for(call.id, text))
        await self._journal.flush(turn=True)

    async def stage_wallet_request(
        self, call: ToolCall, topic: str, kind: Literal["tx", "eip712"], entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return await self._wallet.stage(call, topic, kind, entries)

    def start_background(
        self, call: ToolCall, topic: str, run: Callable[[Progress], Awaitable[Any]], starts_turn: bool
    ) -> None:
        self._background.start(call, topic, run, starts_turn)

    async def emit(self, type_: str, **fields: Any) -> None:
        self._journal.event(type_, **fields)
        await self._journal.flush(turn=True)
