"""Wallet requests and background tools over HTTP, driven with the requests Aomi's client sends: chat and state
with `user_state` and `client_id` in the query, the outcome posted to `/api/system` as a query string with no
body and no key, and the event stream opened with the session header only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ray

from aomi_runtime.actors.app_actors import app_namespace
from tests.conftest import TEST_NAMESPACE
from tests.helpers import eventually, holders
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import reading
from tests.serve_app.test_routes import assert_error

CLIENT_STATE = {"address": "0xme", "chain_id": 1, "is_connected": True, "theme": "dark"}
SEND = '/tool send_eth {"to": "0xabc", "value": "1000"}'
STAGED = {"to": "0xabc", "value": "1000", "data": "0x", "chain_id": None, "label": "Send ETH"}


def client_params(**params: Any) -> dict[str, Any]:
    return {"user_state": json.dumps(CLIENT_STATE), "client_id": "browser-1", **params}


def outcome(ids: list[int], status: str = "success", **extra: Any) -> dict[str, str]:
    payload = {"txHash": "0xfeed", "status": status, "pending_tx_ids": ids, **extra}
    return {"message": json.dumps({"type": "wallet:tx_complete", "payload": payload})}


class Poller:
    """Aomi's client waiting for a turn: state every poll, system events gathered (each is handed out once)."""

    def __init__(self, client: httpx.AsyncClient, session_id: str) -> None:
        self.client, self.session_id = client, session_id
        self.system_events: list[dict[str, Any]] = []

    async def state(self) -> dict[str, Any]:
        r = await self.client.get("/api/state", params=client_params(), headers=h(self.session_id))
        assert r.status_code == 200, r.text
        snap: dict[str, Any] = r.json()
        self.system_events += snap["system_events"]
        return snap

    async def idle(self) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            snap = await self.state()
            return None if snap["is_processing"] else snap

        return await eventually(done, timeout=30, interval=0.1)


async def events(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    r = await client.get("/api/events", params={"count": 1000}, headers=h(session_id))
    assert r.status_code == 200, r.text
    return list(r.json())


async def requested(client: httpx.AsyncClient) -> tuple[str, Poller, dict[str, Any]]:
    """A session whose scripted model called send_eth: waiting for the wallet."""
    s = sid()
    r = await client.post("/api/chat", params=client_params(message=SEND, public_key="0xme"), headers=h(s))
    assert r.status_code == 200 and r.json()["is_processing"], r.text
    poller = Poller(client, s)
    return s, poller, await poller.idle()


async def test_a_transaction_request_waits_for_the_wallet_and_its_outcome_is_answered(
    client: httpx.AsyncClient,
) -> None:
    s, poller, snap = await requested(client)
    assert poller.system_events == [
        {"InlineCall": {"type": "wallet_tx_request", "payload": {"tx_ids": [1], "tx_id": 1, **STAGED}}}
    ]
    # The client's state poll sends its own user_state: its keys are kept as sent, and pending_txs stays.
    assert snap["user_state"] == {**CLIENT_STATE, "pending_txs": {"1": STAGED}}
    assert not snap["is_processing"]
    assert json.loads(snap["messages"][2]["tool_result"][1])["status"] == "pending"

    before = len(await events(client, s))
    r = await client.post("/api/system", params=outcome([1]), headers=h(s))  # no body, no key
    assert r.status_code == 200, r.text
    snap = await poller.idle()
    assert "pending_txs" not in snap["user_state"] and snap["user_state"]["theme"] == "dark"
    assert snap["messages"][-1]["sender"] == "agent" and "0xfeed" in snap["messages"][-1]["content"]
    assert json.loads(snap["messages"][2]["tool_result"][1])["txHash"] == "0xfeed"  # the call's result now
    # The follow-up turn: started by the post, so is_processing held from the post to its end.
    after = [e["type"] for e in (await events(client, s))[before:]]
    assert after[:3] == ["message", "wallet:tx_complete", "processing_started"]  # the call's result, updated
    assert after[-1] == "processing_done"

    # A duplicate is answered once: 200, and no second turn.
    again = await client.post("/api/system", params=outcome([1]), headers=h(s))
    assert again.status_code == 200, again.text
    assert len(await events(client, s)) == before + len(after)
    assert not (await poller.state())["is_processing"]


async def test_a_rejected_request_is_answered_as_a_failure(client: httpx.AsyncClient) -> None:
    s, poller, _ = await requested(client)
    r = await client.post("/api/system", params=outcome([1], "failed", error="User rejected"), headers=h(s))
    assert r.status_code == 200, r.text
    snap = await poller.idle()
    assert snap["messages"][-1]["content"] == "The send_eth tool failed: User rejected"
    assert "pending_txs" not in snap["user_state"]


async def test_an_outcome_for_an_unknown_or_answered_request_is_refused(client: httpx.AsyncClient) -> None:
    s, poller, _ = await requested(client)
    assert_error(await client.post("/api/system", params=outcome([9]), headers=h(s)), 400, "[9]")
    assert_error(await client.post("/api/system", params=outcome([]), headers=h(s)), 400, "pending_tx_ids")
    assert (await poller.state())["user_state"]["pending_txs"] == {"1": STAGED}  # refused: nothing changed
    await client.post("/api/system", params=outcome([1]), headers=h(s))
    await poller.idle()
    failed = outcome([1], "failed", error="too late")
    assert_error(await client.post("/api/system", params=failed, headers=h(s)), 400, "answered already")


async def test_a_request_survives_its_session_actor_being_killed(client: httpx.AsyncClient) -> None:
    s, poller, _ = await requested(client)
    (actor,) = holders(app_namespace(TEST_NAMESPACE, "default"), s)
    ray.kill(actor, no_restart=True)
    snap = await poller.state()  # the session rebuilt from the database
    assert snap["user_state"] == {**CLIENT_STATE, "pending_txs": {"1": STAGED}}
    r = await client.post("/api/system", params=outcome([1]), headers=h(s))
    assert r.status_code == 200, r.text
    snap = await poller.idle()
    assert "0xfeed" in snap["messages"][-1]["content"] and "pending_txs" not in snap["user_state"]


async def test_a_signature_request_and_its_response(client: httpx.AsyncClient) -> None:
    s = sid()
    typed = {"domain": {"name": "Demo"}, "primaryType": "Login", "message": {"nonce": 7}}
    ask = f"/tool sign_typed_data {json.dumps({'typed_data': typed, 'description': 'Log in'})}"
    await client.post("/api/chat", params=client_params(message=ask), headers=h(s))
    poller = Poller(client, s)
    snap = await poller.idle()
    (call,) = [e["InlineCall"] for e in poller.system_events]
    assert call["type"] == "wallet_eip712_request" and call["payload"]["typed_data"] == typed
    eip712_id = call["payload"]["pending_eip712_id"]
    assert snap["user_state"]["pending_eip712s"][eip712_id]["description"] == "Log in"
    response = {"status": "success", "signature": "0x5161", "pending_eip712_id": eip712_id}
    posted = {"message": json.dumps({"type": "wallet_eip712_response", "payload": response})}
    assert (await client.post("/api/system", params=posted, headers=h(s))).status_code == 200
    snap = await poller.idle()
    assert "0x5161" in snap["messages"][-1]["content"] and "pending_eip712s" not in snap["user_state"]


async def test_a_background_tool_answers_queued_and_its_progress_and_end_are_pushed(client: httpx.AsyncClient) -> None:
    s = sid()
    assert (await client.post("/api/sessions", json={}, headers=h(s))).status_code == 200
    reader = await reading(client, s, "tool_complete")
    ask = '/tool background_task {"steps": 3, "pause": 0.2}'
    await client.post("/api/chat", params=client_params(message=ask), headers=h(s))
    poller = Poller(client, s)
    snap = await poller.idle()  # the turn is over before the call is
    queued = json.loads(snap["messages"][2]["tool_result"][1])
    assert queued["status"] == "queued"
    stream = await reader
    pushed = [data for _, data in stream.frames if data["type"] in ("tool_update", "tool_complete")]
    assert [d["type"] for d in pushed] == ["tool_update"] * 3 + ["tool_complete"]
    assert {d["id"] for d in pushed} == {queued["id"]}
    assert pushed[-1]["tool_name"] == "background_task" and pushed[-1]["result"] == {"steps": 3, "status": "done"}
    # what Aomi's widget shows as each toast
    assert [(d["status"], d["message"]) for d in pushed] == [("running", "background_task is running")] * 3 + [
        ("completed", "background_task completed")
    ]
    stored = (await poller.state())["messages"][-1]
    assert stored["sender"] == "system" and json.loads(stored["tool_result"][1]) == {"steps": 3, "status": "done"}


async def test_a_quick_tool_has_no_tool_events(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "/tool time_now"}, headers=h(s))
    snap = await Poller(client, s).idle()
    assert snap["messages"][2]["tool_result"][0] == "time_now"
    assert not {"tool_update", "tool_complete"} & {e["type"] for e in await events(client, s)}


async def test_a_background_call_cut_short_by_a_killed_actor_ends_with_an_error(client: httpx.AsyncClient) -> None:
    s = sid()
    ask = '/tool background_task {"steps": 200, "pause": 0.05}'
    await client.post("/api/chat", params=client_params(message=ask), headers=h(s))
    poller = Poller(client, s)

    async def reporting() -> bool:
        return any(e["type"] == "tool_update" for e in await events(client, s))

    await eventually(reporting, timeout=30)
    (actor,) = holders(app_namespace(TEST_NAMESPACE, "default"), s)
    ray.kill(actor, no_restart=True)
    snap = await poller.idle()
    last = snap["messages"][-1]
    assert last["sender"] == "system" and "cut short" in last["tool_result"][1]
    (ended,) = [e for e in await events(client, s) if e["type"] == "tool_complete"]
    assert ended["result"]["error"].startswith("The background call was cut short")
