"""The turn engine: one user message in, agent messages out, through the App's model and tools."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

from .apps import App
from .errors import InvalidInput, ModelUnavailable
from .protocols import ModelMessage, ModelRequest, TextDelta, ToolCallRequest, Usage
from .records import Message, ToolCall
from .timings import TurnTimings, elapsed_ms
from .tools import Progress, ToolContext, no_wallet

log = logging.getLogger(__name__)


class TurnSink(Protocol):
    """Where a turn's output goes: a session's `TurnOutput`; tests may record it."""

    def append_text(self, text: str) -> None:
        """Add text to the newest streaming agent message, starting one if there is none."""

    async def end_text(self) -> None:
        """Finish the streaming agent message, if any: it is stored and announced."""

    async def add_tool_result(self, call: ToolCall, topic: str, text: str) -> None:
        """Add a finished tool call as its own message (a wallet request's call has one already: its result is
        replaced)."""

    async def emit(self, type_: str, **fields: Any) -> None:
        """Append an event to the session's log."""

    async def stage_wallet_request(
        self, call: ToolCall, topic: str, kind: Literal["tx", "eip712"], entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Stage and announce a wallet request for `call`, stored with the call's pending result (`add_tool_result`
        replaces it later); return the pending result the model is shown."""

    def start_background(
        self, call: ToolCall, topic: str, run: Callable[[Progress], Awaitable[Any]], starts_turn: bool
    ) -> None:
        """Run a background tool call on after the turn, stored as running until it ends."""


def to_model_messages(messages: Sequence[Message]) -> list[ModelMessage]:
    """The conversation as a model reads it: each tool result preceded by the call that made it."""
    out: list[ModelMessage] = []
    for m in messages:
        if m.tool_result is not None and m.tool_call is not None:
            call = ToolCallRequest(
                call_id=m.tool_call.call_id or m.tool_call.id, name=m.tool_call.name, arguments=m.tool_call.arguments
            )
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and not last.tool_calls:
                last.tool_calls.append(call)
            else:
                out.append(ModelMessage(role="assistant", tool_calls=[call]))
            out.append(ModelMessage(role="tool", content=m.tool_result[1], tool_call_id=call.call_id, name=call.name))
        elif m.sender == "user":
            out.append(ModelMessage(role="user", content=m.content))
        elif m.sender == "system":
            out.append(ModelMessage(role="system", content=m.content))
        elif m.content:
            out.append(ModelMessage(role="assistant", content=m.content))
    return out


def summarize_user_state(state: dict[str, Any] | None) -> str:
    """One line for the model: wallet address, chain id, connected or not (flat or nested, snake or camel)."""
    if not state:
        return "User state: none sent."
    flat: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update({k.lower().replace("_", ""): v for k, v in value.items()})
        flat[key.lower().replace("_", "")] = value
    address = flat.get("address") or flat.get("walletaddress")
    chain = flat.get("chainid") or flat.get("chain")
    connected = flat.get("isconnected", flat.get("connected"))
    if connected is None and isinstance(flat.get("status"), str):
        connected = flat["status"] == "connected"
    parts = [
        f"wallet {address}" if address else "no wallet address",
        f"chain id {chain}" if chain is not None else "no chain id",
        "connected" if connected else "not connected",
    ]
    return "User state: " + ", ".join(parts) + "."


def build_system_prompt(app: App, user_state: dict[str, Any] | None, notes: Sequence[str]) -> str:
    parts = [app.spec.system_prompt, summarize_user_state(user_state)]
    if notes:
        parts.append("System messages since the last turn:\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)


def result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)


async def run_turn(
    app: App,
    sink: TurnSink,
    *,
    session_id: str,
    history: Sequence[Message],
    model: str | None = None,
    user_state: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    timings: TurnTimings | None = None,
) -> None:
    """Answer the last user message of `history`: stream the model's text, run the tools it calls, repeat. Each
    model call and tool call is a span of `timings`, if given.

    Raises:
        ModelUnavailable: the model failed, or kept calling tools past the App's limit.
    """
    timings = timings or TurnTimings()  # unread: one way through the code, timed or not
    slug = app.model_slug(model)
    provider = app.providers[slug]
    request = ModelRequest(
        system=build_system_prompt(app, user_state, notes),
        messages=to_model_messages(history),
        tools=app.tools.specs(),
    )
    for _ in range(app.spec.limits.max_tool_rounds + 1):
        text: list[str] = []
        calls: list[ToolCallRequest] = []
        with timings.span("model", slug) as span:
            opened = time.perf_counter()
            async for chunk in provider.stream(request):
                if isinstance(chunk, Usage):  # extras of the span: `timings` and the trace report them
                    span.update(chunk.model_dump(include={"input_tokens", "output_tokens"}, exclude_none=True))
                    continue
                if "first_token_ms" not in span:
                    span["first_token_ms"] = elapsed_ms(opened)
                if isinstance(chunk, TextDelta):
                    text.append(chunk.text)
                    sink.append_text(chunk.text)
                else:
                    calls.append(chunk)
        if not calls:
            return
        await sink.end_text()
        request.messages.append(ModelMessage(role="assistant", content="".join(text), tool_calls=calls))
        asked_wallet = False
        for call in calls:
            result, staged = await _run_tool(app, sink, call, timings, session_id=session_id, user_state=user_state)
            asked_wallet |= staged
            request.messages.append(
                ModelMessage(role="tool", content=result, tool_call_id=call.call_id, name=call.name)
            )
        if asked_wallet:
            return  # no turn holds the session while a human decides: the outcome starts the next one
    raise ModelUnavailable(
        f"The model kept calling tools for more than {app.spec.limits.max_tool_rounds} rounds; the turn was stopped."
    )


async def _run_tool(
    app: App,
    sink: TurnSink,
    request: ToolCallRequest,
    timings: TurnTimings,
    *,
    session_id: str,
    user_state: dict[str, Any] | None,
) -> tuple[str, bool]:
    """Run one call; return its result as the model sees it, and whether it asked the wallet. Its span ends with
    its result, before the result is stored (a commit span of its own)."""
    call = ToolCall(
        id=f"tool_{uuid.uuid4().hex[:16]}", call_id=request.call_id, name=request.name, arguments=request.arguments
    )
    args = dict(request.arguments)
    given_topic = args.pop("topic", None)
    topic = given_topic if isinstance(given_topic, str) and given_topic else call.name
    reported = staged = False

    async def progress(update: Any) -> None:
        nonlocal reported
        reported = True
        await sink.emit("tool_update", **tool_event(call, update))

    async def wallet(kind: Literal["tx", "eip712"], entries: list[dict[str, Any]]) -> dict[str, Any]:
        nonlocal staged
        if staged:
            raise InvalidInput("A tool call asks the wallet once; ask for a batch of transactions instead.")
        pending = await sink.stage_wallet_request(call, topic, kind, entries)
        staged = True
        return pending

    tool = app.tools.get(request.name)
    ctx = ToolContext(
        session_id=session_id,
        app=app.name,
        user_state=user_state,
        progress=progress,
        wallet=wallet,
        secrets=app.client,
    )
    result: Any
    # "error" until a result comes: a call cancelled by an interrupt ends as one that failed.
    with timings.span("tool", call.name, call_id=call.call_id, topic=topic, status="error") as span:
        if tool is None:
            result = {
                "error": f"Unknown tool {request.name!r}; this App offers: {', '.join(app.tools.names) or 'none'}."
            }
        elif tool.background:
            found = tool

            def run(progress: Progress) -> Awaitable[Any]:
                # The same context, but progress goes out on its own, and no wallet: the turn that could wait is
                # over.
                return found.run(args, replace(ctx, progress=progress, wallet=no_wallet))

            sink.start_background(call, topic, run, tool.starts_turn)
            result = {"status": "queued", "id": call.id}
            span["background"] = True
        else:
            try:
                result = await tool.run(args, ctx)
            except Exception as exc:  # the model sees a tool's failure as its result
                log.info("tool %s failed: %s", request.name, type(exc).__name__)
                result = {"error": f"{type(exc).__name__}: {exc}"}
        span["status"] = "error" if is_error(result) else "ok"
    text = result_text(result)
    if reported:
        # Only a call that reported progress ends with `tool_complete` (Aomi's widget shows each as a toast); a
        # quick call's result is in its `message` event and the snapshot.
        await sink.emit("tool_complete", **tool_event(call, result, ended=True))
    await sink.add_tool_result(call, topic, text)
    return text, staged


MAX_EVENT_MESSAGE = 200  # characters of a tool event's `message`: a toast's line


def tool_event(call: ToolCall, result: Any, *, ended: bool = False) -> dict[str, Any]:
    """The fields of a `tool_update` (`ended` False) or `tool_complete` event: the call, `status` (running,
    completed, failed), a short `message` for a toast (Aomi's widget shows both), and `result` as JSON."""
    error = result.get("error") if ended and is_error(result) else None
    if error is not None:
        status, message = "failed", f"{call.name} failed: {error}"
    elif ended:
        status, message = "completed", f"{call.name} completed"
    else:
        status = "running"
        message = result if isinstance(result, str) and result else f"{call.name} is running"
    return {
        "id": call.id,
        "call_id": call.call_id,
        "tool_name": call.name,
        "status": status,
        "message": message[:MAX_EVENT_MESSAGE],
        "result": json_result(result),
    }


def is_error(result: Any) -> bool:
    """Whether a tool's result is an error: `{"error": ...}`, as a failed call's is."""
    return isinstance(result, dict) and result.get("error") is not None


def json_result(result: Any) -> Any:
    """A result as events carry it: JSON, so a result of another type goes out as its JSON form."""
    return result if isinstance(result, str) else json.loads(result_text(result))
