"""`GET /api/state` revalidates: an `ETag` on every snapshot, and 304 with no body while nothing changed, so that
Aomi's client polling every 500 ms (a browser's `fetch` revalidates on its own) is not sent the whole conversation
again and again. A snapshot that hands out system events is never a 304."""

from __future__ import annotations

import httpx

from tests.helpers import eventually

from .conftest import h, sid


async def state(client: httpx.AsyncClient, session_id: str, etag: str | None = None) -> httpx.Response:
    headers = h(session_id) | ({"If-None-Match": etag} if etag else {})
    return await client.get("/api/state", headers=headers)


async def idle(client: httpx.AsyncClient, session_id: str) -> httpx.Response:
    async def done() -> httpx.Response | None:
        r = await state(client, session_id)
        return None if r.json()["is_processing"] else r

    return await eventually(done, timeout=30, interval=0.05)


async def test_a_poll_naming_the_current_version_gets_304_until_something_changes(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "hello"}, headers=h(s))
    first = await idle(client, s)
    etag = first.headers["etag"]
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    assert etag.startswith('"') and etag.endswith('"')

    unchanged = await state(client, s, etag)
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    # a list of versions, and a weak comparison, as browsers may send them
    assert (await state(client, s, f'"other", W/{etag}')).status_code == 304
    assert (await state(client, s, '"other"')).status_code == 200

    await client.post("/api/chat", params={"message": "again"}, headers=h(s))
    changed = await idle(client, s)
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [m["content"] for m in changed.json()["messages"] if m["sender"] == "user"] == ["hello", "again"]
    assert (await state(client, s, changed.headers["etag"])).status_code == 304


async def test_system_events_are_handed_out_even_to_a_poll_naming_the_last_version(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "hello"}, headers=h(s))
    etag = (await idle(client, s)).headers["etag"]
    await client.post("/api/system", params={"message": "maintenance at 5"}, headers=h(s))
    handing_out = await state(client, s, etag)
    assert handing_out.status_code == 200
    assert handing_out.json()["system_events"] == [{"SystemNotice": "maintenance at 5"}]
    # handed out once: the next snapshot differs from the one that handed them out, then holds still
    after = await state(client, s, handing_out.headers["etag"])
    assert after.status_code == 200 and after.json()["system_events"] == []
    assert (await state(client, s, after.headers["etag"])).status_code == 304


async def test_a_turn_in_progress_changes_the_version_as_its_text_grows(client: httpx.AsyncClient) -> None:
    s = sid()
    await client.post("/api/chat", params={"message": "count to 30"}, headers=h(s))
    seen: list[tuple[str, str]] = []  # (etag, the agent's text in that snapshot), poll after poll

    async def finished() -> bool | None:
        r = await state(client, s)
        snap = r.json()
        seen.append((r.headers["etag"], snap["messages"][-1]["content"]))
        return None if snap["is_processing"] else True

    await eventually(finished, timeout=30, interval=0.01)
    texts = {text for _, text in seen}
    assert len(texts) > 3  # the text grew while polled (1..30, 50 ms apart)
    assert len({etag for etag, _ in seen}) >= len(texts)
    assert all(len({t for e, t in seen if e == etag}) == 1 for etag, _ in seen)  # one version, one text


async def test_the_empty_snapshot_of_an_unknown_session_revalidates_too(client: httpx.AsyncClient) -> None:
    s = sid()
    empty = await state(client, s)
    assert empty.status_code == 200 and empty.json()["messages"] == []
    assert (await state(client, s, empty.headers["etag"])).status_code == 304


async def test_a_peek_hands_out_no_system_event(client: httpx.AsyncClient) -> None:
    """An onlooker's read (the console's) leaves the session's system events for its own client."""
    s = sid()
    await client.post("/api/chat", params={"message": "hello"}, headers=h(s))
    await idle(client, s)
    await client.post("/api/system", params={"message": "maintenance at 5"}, headers=h(s))
    for _ in range(2):
        peeked = await client.get("/api/state", params={"peek": "true"}, headers=h(s))
        assert peeked.status_code == 200 and peeked.json()["system_events"] == []
        assert [m["content"] for m in peeked.json()["messages"] if m["sender"] == "user"] == ["hello"]
    assert (await state(client, s)).json()["system_events"] == [{"SystemNotice": "maintenance at 5"}]
