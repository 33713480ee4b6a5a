"""Every route of `docs/api.md`, through real HTTP against the runtime on Serve, with its history in SQLite."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import httpx
import pytest

from aomi_runtime.actors.app_actors import app_namespace
from tests.conftest import TEST_NAMESPACE
from tests.helpers import eventually, holders
from tests.serve_app.conftest import h, sid
from tests.serve_app.sse_client import read_until

EMPTY = {"messages": [], "system_events": [], "title": None, "is_processing": False, "user_state": None}


async def chat(client: httpx.AsyncClient, session_id: str, message: str, **params: Any) -> dict[str, Any]:
    r = await client.post("/api/chat", params={"message": message, **params}, headers=h(session_id))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def finished(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """Poll `GET /api/state` until the turn is over, as a polling client does."""

    async def state() -> dict[str, Any] | None:
        body = (await client.get("/api/state", headers=h(session_id))).json()
        return None if body["is_processing"] else dict(body)

    return await eventually(state, timeout=20, interval=0.05)


def assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"]


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert (r.status_code, r.text) == (200, "OK") and r.headers["content-type"].startswith("text/plain")


async def test_the_console_page_and_every_file_it_loads_are_served_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "connect-src 'self'" in policy
    # Every file the page names, and every module a script imports, resolved as a browser would, from /console.
    wanted = [f"/console/{n}" for n in re.findall(r'(?:src|href)="console/([^"]+)"', page.text)]
    assert "/console/console.js" in wanted and "/console/console.css" in wanted
    seen: set[str] = set()
    while wanted:
        path = wanted.pop()
        if path in seen:
            continue
        seen.add(path)
        r = await client.get(path)
        kind = "text/javascript" if path.endswith(".js") else "text/css"
        assert (r.status_code, r.headers["content-type"]) == (200, f"{kind}; charset=utf-8"), path
        assert r.headers["content-security-policy"] == policy
        wanted += [f"/console/{n}" for n in re.findall(r'from "\./([^"]+)"', r.text)]
        assert "http://" not in r.text and "https://" not in r.text, f"{path} names another host"
    assert len(seen) >= 7, seen


async def test_chat_answers_at_once_and_polling_state_reaches_the_finished_tool_turn(client: httpx.AsyncClient) -> None:
    s = sid()
    snap = await chat(client, s, '/tool long_task {"steps": 2}')
    assert snap["is_processing"] and snap["title"] == "New Chat"
    assert [(m["sender"], m["is_streaming"]) for m in snap["messages"]] == [("user", False), ("agent", True)]
    done = await finished(client, s)
    user, text, result, final = done["messages"]
    assert user["content"] == '/tool long_task {"steps": 2}' and user["sender"] == "user"
    assert (text["sender"], text["content"], text["tool_result"]) == ("agent", "", None)
    assert result["tool_result"] == ["long_task", '{"steps": 2, "status": "done"}'] and result["content"] == ""
    assert final["content"] == 'The long_task tool returned: {"steps": 2, "status": "done"}'
    assert all(not m["is_streaming"] for m in done["messages"])
    assert all(m["timestamp"].endswith("Z") for m in done["messages"])


async def test_chat_takes_the_message_from_a_json_body_too(client: httpx.AsyncClient) -> None:
    s = sid()
    r = await client.post("/api/chat", json={"message": "from the body"}, headers=h(s))
    assert r.status_code == 200 and r.json()["messages"][0]["content"] == "from the body"


async def test_a_request_id_makes_a_retried_chat_add_its_message_once_and_marks_its_turn(
    client: httpx.AsyncClient,
) -> None:
    s = sid()
    first = await chat(client, s, "count to 2", request_id="req-1")
    retried = await chat(client, s, "count to 2", request_id="req-1")  # its answer was lost, say
    assert [m["content"] for m in retried["messages"] if m["sender"] == "user"] == ["count to 2"]
    assert first["messages"][0]["request_id"] == "req-1"

    # The snapshot says where the stream stood, so a client can follow the turn from there.
    assert isinstance(first["last_event_id"], int) and first["last_event_id"] >= 1
    await finished(client, s)
    events = (await client.get("/api/events", headers=h(s))).json()
    turn = [e for e in events if e["type"] in ("processing_started", "processing_done")]
    assert [(e["type"], e["request_id"]) for e in turn] == [
        ("processing_started", "req-1"),
        ("processing_done", "req-1"),
    ]


@pytest.mark.parametrize(
    ("headers", "params", "status", "words"),
    [
        ({}, {"message": "x"}, 400, ["X-Session-Id"]),
        ({"X-Session-Id": ""}, {"message": "x"}, 400, ["X-Session-Id"]),
        ({"X-Session-Id": "../../etc/passwd"}, {"message": "x"}, 400, ["malformed"]),
        ({"X-Session-Id": "a" * 129}, {"message": "x"}, 400, ["malformed"]),
        ({"X-Session-Id": "ok-id"}, {}, 400, ["message"]),
        ({"X-Session-Id": "ok-id"}, {"message": "   "}, 400, ["empty"]),
        ({"X-Session-Id": "ok-id"}, {"message": "x", "app": "nope"}, 400, ["Unknown App 'nope'"]),
        ({"X-Session-Id": "ok-id"}, {"message": "x", "user_state": "{not json"}, 400, ["user_state"]),
        ({"X-Session-Id": "ok-id"}, {"message": "x", "user_state": "[1, 2]"}, 400, ["JSON object"]),
        ({"X-Session-Id": "ok-id"}, {"message": "x", "request_id": "a b"}, 400, ["request_id is malformed"]),
    ],
)
async def test_chat_refuses_bad_input_with_a_clear_error(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, str], status: int, words: list[str]
) -> None:
    s = sid()  # "ok-id" above stands for a well-formed id of this test's own
    headers = {name: s if value == "ok-id" else value for name, value in headers.items()}
    before = await sessions_created(client)
    r = await client.post("/api/chat", params=params, headers=headers)
    assert_error(r, status, *words)
    # Nothing was created for a refused request, under its id or any other (malformed ids included)...
    assert await sessions_created(client) == before
    if headers.get("X-Session-Id") == s:  # ...and its well-formed id has no session
        assert (await client.get("/api/state", headers=h(s))).json() == EMPTY


async def test_a_message_over_the_limit_is_refused_and_one_at_the_limit_taken(client: httpx.AsyncClient) -> None:
    # Messages this large travel in the JSON body: a request line of 64 KiB is more than HTTP servers take.
    s = sid()
    r = await client.post("/api/chat", json={"message": "x" * (64 * 1024 + 1)}, headers=h(s))
    assert_error(r, 413, "limit")
    assert (await client.get("/api/state", headers=h(s))).json() == EMPTY
    at_limit = "é" * (32 * 1024)
    r = await client.post("/api/chat", json={"message": at_limit}, headers=h(s))
    assert r.status_code == 200 and r.json()["messages"][0]["content"] == at_limit


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/chat", content=b"{nope", headers={**h(sid()), "Content-Type": "application/json"})
    assert_error(r, 400, "JSON")
    r = await client.post("/api/chat", content=b"message=hi", headers={**h(sid()), "Content-Type": "text/plain"})
    assert_error(r, 415, "Content-Type")  # docs/api.md: 415 without the JSON content type
    r = await client.post("/api/sessions", content=b"{nope", headers={**h(sid()), "Content-Type": "application/json"})
    assert_error(r, 400, "JSON")


async def test_state_of_an_unknown_session_is_the_empty_snapshot(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/state", headers=h(sid()))
    assert r.status_code == 200 and r.json() == EMPTY
    assert_error(await client.get("/api/state"), 400, "X-Session-Id")


async def test_user_state_is_kept_as_sent(client: httpx.AsyncClient) -> None:
    s = sid()
    state = {"walletAddress": "0xabc", "chainId": 1, "isConnected": True}
    await chat(client, s, "hi", user_state=json.dumps(state))
    assert (await finished(client, s))["user_state"] == state
    newer = {"address": "0xdef", "chain_id": 10}
    r = await client.get("/api/state", params={"user_state": json.dumps(newer)}, headers=h(s))
    assert r.json()["user_state"] == newer
    assert_error(await client.get("/api/state", params={"user_state": "3"}, headers=h(s)), 400, "JSON object")


async def test_interrupt_stops_a_slow_reply_and_is_idempotent(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "count to 500")
    await eventually(lambda: _content_of_last(client, s), timeout=10)
    r = await client.post("/api/interrupt", headers=h(s))
    assert r.status_code == 200
    snap = r.json()
    assert not snap["is_processing"]
    assert snap["system_events"] == [
        {"InlineCall": {"type": "user_request", "kind": "Interruption", "payload": "Interrupted by user"}}
    ]
    partial = snap["messages"][-1]["content"]
    assert partial.startswith("1") and not partial.endswith(" 500") and not snap["messages"][-1]["is_streaming"]
    again = (await client.post("/api/interrupt", headers=h(s))).json()
    assert again["system_events"] == [] and again["messages"] == snap["messages"]
    assert_error(await client.post("/api/interrupt", headers=h(sid())), 404)


async def _content_of_last(client: httpx.AsyncClient, s: str) -> str:
    return str((await client.get("/api/state", headers=h(s))).json()["messages"][-1]["content"])


async def test_events_lists_the_last_n_as_sent_on_the_stream(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "hello")
    stream = await read_until(client, s, "title_changed")  # the last event of a first turn
    every = (await client.get("/api/events", params={"count": 1000}, headers=h(s))).json()
    assert every == [data for _, data in stream.frames]
    last_two = (await client.get("/api/events", params={"count": 2}, headers=h(s))).json()
    assert last_two == every[-2:]
    assert_error(await client.get("/api/events", headers=h(sid())), 404)
    assert_error(await client.get("/api/events", params={"count": -1}, headers=h(s)), 422)


async def test_system_messages_text_and_json(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "hello")
    await finished(client, s)
    r = await client.post("/api/system", params={"message": "Gas is high"}, headers=h(s))
    assert r.status_code == 200 and (r.json()["res"]["sender"], r.json()["res"]["content"]) == ("system", "Gas is high")
    posted = {"type": "tx_signed", "payload": {"hash": "0x1"}}
    r = await client.post("/api/system", params={"message": json.dumps(posted)}, headers=h(s))
    assert json.loads(r.json()["res"]["content"]) == posted
    events = (await client.get("/api/events", params={"count": 2}, headers=h(s))).json()
    assert events == [
        {"type": "system_notice", "session_id": s, "message": "Gas is high"},
        {"type": "tx_signed", "session_id": s, "payload": {"hash": "0x1"}},
    ]
    snap = (await client.get("/api/state", headers=h(s))).json()
    assert snap["system_events"] == [
        {"SystemNotice": "Gas is high"},
        {"InlineCall": {"type": "tx_signed", "payload": posted}},
    ]
    assert (await client.get("/api/state", headers=h(s))).json()["system_events"] == []
    assert_error(await client.post("/api/system", headers=h(s)), 400, "message")
    forged = json.dumps({"type": "processing_done", "request_id": "someone-elses"})
    assert_error(await client.post("/api/system", params={"message": forged}, headers=h(s)), 400, "runtime's own")
    assert (await client.get("/api/events", params={"count": 1}, headers=h(s))).json()[0]["type"] == "tx_signed"


async def test_sessions_are_created_listed_renamed_archived_and_deleted(client: httpx.AsyncClient) -> None:
    key = f"0x{uuid.uuid4().hex}"
    a, b = sid(), sid()
    r = await client.post("/api/sessions", json={"public_key": key, "title": "Trip"}, headers=h(a))
    assert r.status_code == 200 and r.json() == {"session_id": a, "title": "Trip"}
    await chat(client, b, "hello", public_key=key)
    await finished(client, b)

    listed = (await client.get("/api/sessions", params={"public_key": key})).json()
    assert [x["session_id"] for x in listed] == [b, a]
    assert set(listed[0]) == {"session_id", "title", "is_archived", "created_at", "updated_at"}
    assert (await client.get("/api/sessions", params={"public_key": key, "limit": 1})).json()[0]["session_id"] == b
    assert (await client.get("/api/sessions", params={"public_key": "0xnobody"})).json() == []
    assert_error(await client.get("/api/sessions"), 400, "public_key")

    r = await client.patch(f"/api/sessions/{b}", json={"title": "Renamed"})
    assert r.json() == {"session_id": b, "title": "Renamed"}
    got = (await client.get(f"/api/sessions/{b}")).json()
    assert got["title"] == "Renamed" and got["is_archived"] is False
    assert (await client.post(f"/api/sessions/{b}/archive")).json() == {"session_id": b, "is_archived": True}
    assert (await client.get(f"/api/sessions/{b}")).json()["is_archived"] is True
    assert (await client.post(f"/api/sessions/{b}/unarchive")).json() == {"session_id": b, "is_archived": False}
    assert_error(await client.patch(f"/api/sessions/{b}", json={}), 400, "title")

    r = await client.delete(f"/api/sessions/{b}")
    assert r.json() == {"deleted": True}
    assert_error(await client.get(f"/api/sessions/{b}"), 404)
    assert (await client.get("/api/state", headers=h(b))).json() == EMPTY
    assert [x["session_id"] for x in (await client.get("/api/sessions", params={"public_key": key})).json()] == [a]

    unknown = sid()
    assert_error(await client.get(f"/api/sessions/{unknown}"), 404)
    assert_error(await client.patch(f"/api/sessions/{unknown}", json={"title": "x"}), 404)
    assert (await client.delete(f"/api/sessions/{unknown}")).json() == {"deleted": False}
    assert_error(await client.post(f"/api/sessions/{unknown}/archive"), 404)
    assert_error(await client.get("/api/sessions/bad%20id"), 400, "malformed")


async def test_posting_a_stored_session_warms_it_without_changing_it(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "hello")
    before = await finished(client, s)
    r = await client.post("/api/sessions", headers=h(s))
    assert r.json() == {"session_id": s, "title": before["title"]}
    assert (await client.get("/api/state", headers=h(s))).json()["messages"] == before["messages"]


async def test_the_automatic_title_arrives_on_the_stream_and_a_manual_one_wins(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "what is the weather in Paris today")
    stream = await read_until(client, s, "title_changed")
    assert stream.frames[-1][1] == {
        "type": "title_changed",
        "session_id": s,
        "new_title": "What is the weather in Paris",
    }
    await client.patch(f"/api/sessions/{s}", json={"title": "Mine"})
    await chat(client, s, "and tomorrow?")
    assert (await finished(client, s))["title"] == "Mine"


async def test_cors_allows_any_origin(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/chat",
        headers={
            "Origin": "https://example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-session-id",
        },
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] in ("*", "https://example.test")


async def test_unknown_routes_answer_with_an_error_body(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nothing"), 404)
    assert_error(await client.put("/api/chat", headers=h(sid())), 405)


async def test_many_first_requests_for_one_new_session_make_one_actor(client: httpx.AsyncClient) -> None:
    s = sid()
    responses = await asyncio.gather(*(client.post("/api/sessions", headers=h(s)) for _ in range(100)))
    assert {r.status_code for r in responses} == {200}
    assert len(holders(app_namespace(TEST_NAMESPACE, "default"), s)) == 1


async def test_messages_sent_at_once_are_all_stored_in_order_and_answered(client: httpx.AsyncClient) -> None:
    s = sid()
    await chat(client, s, "count to 5")
    texts = [f"m{i}" for i in range(10)]
    for text in texts:  # sent one after another, each acknowledged before the next
        await chat(client, s, text)
    done = await finished(client, s)
    users = [m["content"] for m in done["messages"] if m["sender"] == "user"]
    assert users == ["count to 5", *texts]
    agents = [m["content"] for m in done["messages"] if m["sender"] == "agent"]
    assert agents == ["1 2 3 4 5", *(f'You said: "{t}"' for t in texts)]


async def sessions_created(client: httpx.AsyncClient) -> float:
    """Sessions created so far by every App of the runtime, as its directories count them (`/metrics`)."""
    counts = [value for (name, _), value in (await _metrics(client)).items() if name == "aomi_sessions_created_total"]
    assert counts, "/metrics counts no session created: a check on it would prove nothing"
    return sum(counts)


async def _metrics(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


async def test_metrics_count_what_happened(client: httpx.AsyncClient) -> None:
    app = (("app", "default"),)
    before = await _metrics(client)
    s = sid()
    await chat(client, s, "hello")
    await finished(client, s)
    await client.get("/api/state", headers=h(s))

    async def turn_counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        now = await _metrics(client)
        return now if now[("aomi_turn_seconds_count", app)] > before.get(("aomi_turn_seconds_count", app), 0) else None

    after = await eventually(turn_counted, timeout=10)

    def grew(name: str, labels: tuple[tuple[str, str], ...] = app) -> float:
        return after[(name, labels)] - before.get((name, labels), 0.0)

    assert grew("aomi_sessions_created_total") == 1
    assert grew("aomi_turn_seconds_count") == 1
    assert grew("aomi_session_load_seconds_count") == 1
    assert grew("aomi_store_write_seconds_count") >= 3 and grew("aomi_store_batch_rows_count") >= 3
    assert 1 <= grew("aomi_store_commits_per_transaction_count") <= grew("aomi_store_commits_per_transaction_sum")
    assert grew("aomi_cache_hits_total", (("app", ""), ("layer", "replica"))) >= 1
    assert grew("aomi_request_seconds_count", (("method", "POST"), ("route", "/api/chat"), ("status", "200"))) == 1
    assert after[("aomi_sessions_live", app)] >= 1
    assert ("aomi_stream_subscribers", ()) in after
