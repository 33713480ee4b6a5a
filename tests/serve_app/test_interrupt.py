"""Interrupt as Aomi's client uses it (it stops polling afterwards): the running turn ends, and the messages
queued behind it stay in the history, marked as not answered, with no turn run for them."""

from __future__ import annotations

import asyncio

import httpx

from tests.serve_app.conftest import h, sid


async def test_interrupt_leaves_the_queued_messages_unanswered_and_runs_no_turn_for_them(
    client: httpx.AsyncClient,
) -> None:
    s = sid()
    for text in ("count to 500", "first queued", "second queued"):
        r = await client.post("/api/chat", params={"message": text}, headers=h(s))
        assert r.status_code == 200, r.text
    assert [m["queued"] for m in r.json()["messages"][-2:]] == [True, True]
    r = await client.post("/api/interrupt", headers=h(s))  # no key, as the client sends it
    assert r.status_code == 200, r.text
    snap = r.json()
    assert not snap["is_processing"]
    shown = [(m["sender"], m["content"], m["unanswered"], m["queued"]) for m in snap["messages"][2:]]
    assert shown == [("user", "first queued", True, False), ("user", "second queued", True, False)]
    await asyncio.sleep(0.5)  # a turn for them would have started and answered by now
    later = (await client.get("/api/state", headers=h(s))).json()
    assert not later["is_processing"] and later["messages"] == snap["messages"]
    again = (await client.post("/api/interrupt", headers=h(s))).json()  # idempotent
    assert again["messages"] == snap["messages"] and not again["is_processing"]
