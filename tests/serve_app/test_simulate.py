"""`POST /api/simulate` as the widget sends it: the demo simulator of the default App, an App without one (501),
the session's App when X-Session-Id names one, and input refused before any simulator runs."""

from __future__ import annotations

import httpx
import pytest

from aomi_runtime.agent.simulation import DEMO_FEE_RECIPIENT, DEMO_FEE_WEI
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.test_routes import assert_error, finished

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
ZERO = "0x" + "0" * 40


async def test_the_demo_simulator_answers_a_batch(client: httpx.AsyncClient) -> None:
    body = {
        "transactions": [
            {"to": BOB, "value": "1000000000000000000", "label": "pay Bob"},
            {"to": ALICE, "data": "0xa9059cbb00", "chain_id": 8453},
        ],
        "from": ALICE,
    }
    r = await client.post("/api/simulate", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "result": {
            "batch_success": True,
            "stateful": True,
            "from": ALICE,
            "network": "base",
            "total_gas": 21_000 + 21_000 + 4 * 16 + 4,
            "fee": {"recipient": DEMO_FEE_RECIPIENT, "amount_wei": str(DEMO_FEE_WEI), "token": "ETH"},
            "steps": [
                {"index": 0, "label": "pay Bob", "to": BOB, "value": "1000000000000000000", "success": True,
                 "gas_used": 21_000, "error": None},
                {"index": 1, "label": None, "to": ALICE, "value": "0", "success": True, "gas_used": 21_068,
                 "error": None},
            ],
        }
    }  # fmt: skip


async def test_a_reverting_step_fails_the_batch_and_gets_no_fee(client: httpx.AsyncClient) -> None:
    body = {"transactions": [{"to": ZERO, "value": "1"}, {"to": BOB}], "chain_id": 1}
    result = (await client.post("/api/simulate", json=body)).json()["result"]
    assert (result["batch_success"], result["fee"], result["network"], result["from"]) == (
        False,
        None,
        "ethereum",
        ZERO,
    )
    assert [(s["success"], s["error"]) for s in result["steps"]] == [
        (False, "reverted: transfer to the zero address"),
        (False, "not run: an earlier step reverted"),
    ]


async def test_an_app_without_a_simulator_answers_501(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    body = {"transactions": [{"to": BOB}]}
    r = await client.post("/api/simulate", json=body, headers=k(keys["billing"]))  # the App the key opens
    assert_error(r, 501, "billing", "simulator")
    # The session's App, when X-Session-Id names one: helpdesk has no simulator, whatever the caller's key.
    s = sid()
    assert (await client.post("/api/chat", params={"message": "hi", "app": "helpdesk"}, headers=h(s))).is_success
    await finished(client, s)
    assert_error(await client.post("/api/simulate", json=body, headers=h(s)), 501, "helpdesk")
    assert_error(await client.post("/api/simulate", params={"app": "default"}, json=body, headers=h(s)), 409)
    # A session id that names no session: the caller's App, default here.
    assert (await client.post("/api/simulate", json=body, headers=h(sid()))).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        pytest.param({"transactions": []}, 422, "transactions", id="no transactions"),
        pytest.param({"transactions": [{"to": "0x12"}]}, 422, "to", id="short address"),
        pytest.param({"transactions": [{"to": "bob.eth"}]}, 422, "to", id="not hex"),
        pytest.param({"transactions": [{"to": BOB, "value": "1.5"}]}, 422, "value", id="fractional value"),
        pytest.param({"transactions": [{"to": BOB, "value": -1}]}, 422, "value", id="number value"),
        pytest.param({"transactions": [{"to": BOB, "data": "0xabc"}]}, 422, "data", id="odd data"),
        pytest.param({"transactions": [{"to": BOB}], "from": "me"}, 422, "from", id="bad from"),
        pytest.param({"transactions": [{"to": BOB}] * 33}, 422, "transactions", id="too many"),
        pytest.param({"transactions": [{"to": BOB, "gas": 1}]}, 422, "gas", id="unknown field"),
    ],
)
async def test_bad_input_is_refused(client: httpx.AsyncClient, body: object, status: int, word: str) -> None:
    assert_error(await client.post("/api/simulate", json=body), status, word)


async def test_a_missing_or_non_json_body_is_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/simulate"), 400, "body")
    assert_error(await client.post("/api/simulate", content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_error(await client.post("/api/simulate", content=b"x", headers={"Content-Type": "text/plain"}), 415)
