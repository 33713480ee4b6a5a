"""Wallet requests: a tool asks the user's wallet to send transactions or sign EIP-712 typed data.

The request is staged in the session's `user_state` (`pending_txs`, `pending_eip712s`: keys the runtime owns,
whatever the client sends back), announced as an `InlineCall` system event in the shape Aomi's client parses, and
stored with the session. Its outcome, posted to `/api/system`, becomes the tool call's result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidInput
from .records import SystemEvent, ToolCall, WalletRequest, inline_call

if TYPE_CHECKING:  # the journal imports `staged_state` from here
    from .journal import Journal

PENDING_TXS = "pending_txs"
PENDING_EIP712S = "pending_eip712s"
TX_COMPLETE = "wallet:tx_complete"
EIP712_RESPONSE = "wallet_eip712_response"
OUTCOME_TYPES = frozenset({TX_COMPLETE, EIP712_RESPONSE})
KEEP_ANSWERED = 64  # answered requests kept, so that a duplicate outcome is told from an unknown one
TX_FIELDS = ("to", "value", "data", "chain_id", "label")
WEI = re.compile(r"[0-9]+")  # ASCII digits only: `str.isdigit` takes other scripts' digits too


def transaction(entry: dict[str, Any]) -> dict[str, Any]:
    """One transaction as staged: `{to, value, data, chain_id, label}`; `value` in wei, as a decimal string."""
    to = entry.get("to")
    if not isinstance(to, str) or not to:
        raise InvalidInput("A transaction needs `to`, an address.")
    value = entry.get("value", "0")
    if not (value >= 0 if _is_int(value) else isinstance(value, str) and WEI.fullmatch(value) is not None):
        raise InvalidInput("A transaction's `value` is wei: an integer of 0 or more, or a string of digits.")
    return {
        "to": to,
        "value": str(value),
        "data": entry.get("data") or "0x",
        "chain_id": _chain_id(entry),
        "label": entry.get("label"),
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _chain_id(entry: dict[str, Any]) -> int | None:
    chain_id = entry.get("chain_id")
    if chain_id is not None and not _is_int(chain_id):
        raise InvalidInput("A wallet request's `chain_id` is an integer, or absent.")
    return chain_id


def announcement(request: WalletRequest) -> SystemEvent:
    """The `InlineCall` system event Aomi's client reads to ask its wallet."""
    if request.kind == "tx":
        payload: dict[str, Any] = {"tx_ids": request.ids}
        if len(request.ids) == 1:  # a single transaction's fields, as Aomi's backend sends them
            payload |= {"tx_id": request.ids[0], **request.staged[str(request.ids[0])]}
        return inline_call("wallet_tx_request", payload)
    (eip712_id,) = request.ids
    staged = request.staged[str(eip712_id)]
    return inline_call(
        "wallet_eip712_request",
        {
            "typed_data": staged["typed_data"],
            "description": staged["description"],
            "chain_id": staged.get("chain_id"),
            "pending_eip712_id": str(eip712_id),
        },
    )


def pending_result(request: WalletRequest) -> dict[str, Any]:
    """What the model sees as the tool's result until the outcome arrives."""
    key = "tx_ids" if request.kind == "tx" else "pending_eip712_id"
    ids: Any = request.ids if request.kind == "tx" else str(request.ids[0])
    return {"status": "pending", "waiting_for": "the user's wallet", key: ids}


def staged_state(state: dict[str, Any] | None, requests: Iterable[WalletRequest]) -> dict[str, Any] | None:
    """`state` as the client sent it, with the runtime's own keys set from the requests still pending."""
    staged: dict[str, dict[str, Any]] = {PENDING_TXS: {}, PENDING_EIP712S: {}}
    for r in requests:
        if r.outcome is None:
            staged[PENDING_TXS if r.kind == "tx" else PENDING_EIP712S].update(r.staged)
    if state is None and not any(staged.values()):
        return None
    out = {k: v for k, v in (state or {}).items() if k not in staged}
    return out | {k: v for k, v in staged.items() if v}


def _ids(value: Any, what: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    try:
        ids = [int(v) for v in items if not isinstance(v, bool)]
    except (TypeError, ValueError):
        ids = []
    if not ids or len(ids) != len(items):
        raise InvalidInput(f"{what} names no request id: send the ids the wallet request gave, as numbers.")
    return ids


def answered_request(requests: Iterable[WalletRequest], type_: str, payload: Any) -> WalletRequest:
    """The request a posted outcome (`wallet:tx_complete`, `wallet_eip712_response`) answers.

    Raises:
        InvalidInput: the outcome is malformed, or names no request of this session, or only part of one.
    """
    if not isinstance(payload, dict):
        raise InvalidInput(f"A {type_!r} message carries its outcome as a JSON object in `payload`.")
    if payload.get("status") not in ("success", "failed"):
        raise InvalidInput(f"A {type_!r} outcome has `status` 'success' or 'failed'.")
    if type_ == TX_COMPLETE:
        kind, ids = "tx", _ids(payload.get("pending_tx_ids"), "`pending_tx_ids`")
    else:
        kind, ids = "eip712", _ids(payload.get("pending_eip712_id"), "`pending_eip712_id`")
    for r in requests:
        if r.kind == kind and set(ids) & set(r.ids):
            if set(ids) != set(r.ids):
                raise InvalidInput(f"The outcome names ids {ids}, but the request was for {r.ids} together.")
            return r
    raise InvalidInput(f"No wallet request of this session has the id(s) {ids}; it may have been deleted.")


def outcome_text(payload: dict[str, Any]) -> str:
    """The outcome as the tool call's result: the payload as posted, an `error` key when it failed."""
    result = dict(payload)
    if result.get("status") == "failed":
        result.setdefault("error", "The wallet did not complete the request.")
    return json.dumps(result, ensure_ascii=False)


class WalletDesk:
    """The wallet requests of one session: staged by its tools, answered by its client."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def stage(
        self, call: ToolCall, topic: str, kind: Literal["tx", "eip712"], entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Stage a request for `call` in user_state, announce it, store it with the call's pending result message;
        return that result. One commit: a turn stopped after it (an interrupt, a crash) leaves a message its outcome
        replaces, so the follow-up's model sees the outcome and does not ask the wallet again."""
        staged = [transaction(e) for e in entries] if kind == "tx" else [_typed_data(e) for e in entries]
        record = self._journal.record
        ids = list(range(record.last_wallet_id + 1, record.last_wallet_id + 1 + len(staged)))
        record.last_wallet_id = ids[-1]
        request = WalletRequest(
            kind=kind, ids=ids, call=call, staged={str(i): e for i, e in zip(ids, staged, strict=True)}
        )
        record.wallet_requests.append(request)
        record.pending_system_events.append(announcement(request))
        pending = pending_result(request)
        self._journal.add_tool_result(call, topic, json.dumps(pending, ensure_ascii=False))
        self._journal.set_user_state(None)
        self._journal.record_changed()
        await self._journal.flush(turn=True)  # only a turn's tool stages a request
        return pending

    def answer(self, type_: str, payload: Any) -> bool:
        """Take a posted outcome as its request's answer: the staged entries cleared, the outcome the tool call's
        result (stored with the next commit). False for a duplicate of the outcome already taken: no effect.

        Raises:
            InvalidInput: the outcome is malformed, names no request of this session, or differs from the outcome
                its request was answered with.
        """
        request = answered_request(self._journal.record.wallet_requests, type_, payload)
        if request.outcome is not None:
            if request.outcome == payload:
                return False
            raise InvalidInput(f"The wallet request {request.ids} was answered already, with another outcome.")
        record = self._journal.record
        request.outcome = payload
        self._journal.set_tool_result(request.call.id, outcome_text(payload))
        self._journal.set_user_state(None)
        answered = [r for r in record.wallet_requests if r.outcome is not None]
        for old in answered[: max(0, len(answered) - KEEP_ANSWERED)]:
            record.wallet_requests.remove(old)
        self._journal.record_changed()
        return True

    def result_for(self, call_id: str, text: str) -> str:
        """The result to store for `call_id`: its wallet outcome if it came before the call's result was added."""
        for r in self._journal.record.wallet_requests:
            if r.call.id == call_id and r.outcome is not None:
                return outcome_text(r.outcome)
        return text


def _typed_data(entry: dict[str, Any]) -> dict[str, Any]:
    typed_data = entry.get("typed_data")
    if not isinstance(typed_data, dict) or not typed_data:
        raise InvalidInput("A signature request needs `typed_data`, the EIP-712 object to sign.")
    return {
        "typed_data": typed_data,
        "description": str(entry.get("description") or ""),
        "chain_id": _chain_id(entry),
    }
