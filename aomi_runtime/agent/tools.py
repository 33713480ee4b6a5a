"""Tools: how one is written, the context it runs in, and the registry an App's model sees."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidInput
from .imports import import_named
from .protocols import ToolSpec
from .secrets import ClientSecrets

Progress = Callable[[Any], Awaitable[None]]
WalletStage = Callable[[Literal["tx", "eip712"], list[dict[str, Any]]], Awaitable[dict[str, Any]]]
"""Stages a wallet request for the calling tool call; returns the pending result the model is shown."""

TOPIC_PROPERTY = {
    "type": "string",
    "description": "A short topic for the result, shown to the user; defaults to the tool's name.",
}


async def _no_progress(_: Any) -> None:
    return None


async def no_wallet(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Where no wallet can be asked: a background call outlives the turn that could end to wait for one."""
    raise InvalidInput("This tool runs where no wallet can be asked (in the background, or outside a session).")


@dataclass(frozen=True)
class ToolContext:
    """What a running tool knows of where it runs. `progress` reaches the calling session only.

    A tool asks the user's wallet with `request_transaction(s)` or `request_signature` and returns what they
    return: the model step ends there, and the wallet's outcome becomes the call's result when the user answers.
    """

    session_id: str
    app: str
    user_state: dict[str, Any] | None = None
    progress: Progress = _no_progress
    wallet: WalletStage = no_wallet
    secrets: ClientSecrets | None = None  # the session's own client's, if it is bound to one

    async def secret(self, name: str) -> str:
        """The value of a secret the session's client set (`POST /api/secrets`). Raises `InvalidInput` if the
        session has no client, or its client no secret of that name: another client's is never read."""
        value = await self.secrets.get(name) if self.secrets is not None else None
        if value is None:
            raise InvalidInput(f"No secret {name!r}: the session's client has not set it (POST /api/secrets).")
        return value

    async def request_transactions(self, transactions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Ask the wallet to send a batch: each `{to, value (wei), data?, chain_id?, label?}`."""
        if not transactions:
            raise InvalidInput("A wallet request holds at least one transaction.")
        return await self.wallet("tx", [dict(t) for t in transactions])

    async def request_transaction(
        self, to: str, value: int | str = 0, data: str = "0x", chain_id: int | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """Ask the wallet to send one transaction (`value` in wei)."""
        return await self.request_transactions(
            [{"to": to, "value": value, "data": data, "chain_id": chain_id, "label": label}]
        )

    async def request_signature(
        self, typed_data: Mapping[str, Any], description: str = "", chain_id: int | None = None
    ) -> dict[str, Any]:
        """Ask the wallet to sign EIP-712 `typed_data`; `description` tells the user what it is for."""
        return await self.wallet(
            "eip712", [{"typed_data": dict(typed_data), "description": description, "chain_id": chain_id}]
        )


@dataclass(frozen=True)
class Tool:
    """A tool: `fn(args, ctx)` returns its result, sync (run in a thread) or async (may report progress).

    A `background` tool's call answers the model `{"status": "queued", "id": ...}` at once and runs on after the
    turn; its result is given to the model at the next turn, which it starts itself if `starts_turn`.
    """

    name: str
    description: str
    fn: Callable[[dict[str, Any], ToolContext], Any]
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    background: bool = False
    starts_turn: bool = False

    def spec(self) -> ToolSpec:
        properties = {**self.parameters.get("properties", {}), "topic": TOPIC_PROPERTY}
        return ToolSpec(
            name=self.name, description=self.description, parameters={**self.parameters, "properties": properties}
        )

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(args, ctx)
        # A sync tool may block; the actor's event loop must not.
        return await asyncio.to_thread(self.fn, args, ctx)


def tool(
    name: str | None = None,
    *,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    background: bool = False,
    starts_turn: bool = False,
) -> Callable[[Callable[[dict[str, Any], ToolContext], Any]], Tool]:
    """Decorate `fn(args, ctx)` to make a `Tool`; the name defaults to the function's. See `Tool` for
    `background` and `starts_turn`."""

    def wrap(fn: Callable[[dict[str, Any], ToolContext], Any]) -> Tool:
        return Tool(
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            fn=fn,
            parameters=parameters or {"type": "object", "properties": {}},
            background=background,
            starts_turn=starts_turn,
        )

    return wrap


class ToolRegistry:
    """The tools one App offers, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self._tools:
                raise InvalidInput(f"Two tools are named {t.name!r}; tool names must be unique within an App.")
            self._tools[t.name] = t

    @classmethod
    def from_names(cls, names: Iterable[str], builtins: Iterable[Tool]) -> ToolRegistry:
        """Resolve each name as a built-in tool, or as an import path `package.module:attribute`."""
        known = {t.name: t for t in builtins}
        return cls(known[n] if n in known else _import_tool(n) for n in names)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        return [t.spec() for t in self._tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self._tools)


def _import_tool(path: str) -> Tool:
    found = import_named(path, "tool")
    if not isinstance(found, Tool):
        raise InvalidInput(f"{path!r} is a {type(found).__name__}, not a Tool; decorate it with @tool.")
    return found
