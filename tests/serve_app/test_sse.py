"""A stream's byte budget, over HTTP against the real runtime: a stream ends once it has carried its share of live
events, naming the `Last-Event-ID` to resume from, and a client that resumes with it gets every event once.

The budget is a setting of the ingress, so these tests reach the shared runtime's sessions through a front door
of their own whose `stream_max_bytes` is the least allowed (`front_door`, from test_statuses.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import ray

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.serve_app.settings import Settings
from tests.conftest import TEST_NAMESPACE
from tests.helpers import eventually, holders
from tests.serve_app.conftest import h, sid
from tests.serve_app.test_statuses import front_door

BUDGET = 4096
NOTICE = "n" * 1000  # a system_notice of some 1,100 bytes a frame: the budget is spent after four
ENDS = re.compile(
    r"^: this stream has sent its share \((\d+) bytes of live events\) and ends here; "
    r"reconnect with Last-Event-ID: (\d+) to go on$"
)


@pytest.fixture(scope="module")
def small_url(runtime_url: str, runtime_settings: Settings, proxy_url: str) -> Iterator[str]:
    with front_door(runtime_settings.model_copy(update={"stream_max_bytes": BUDGET}), "small", proxy_url) as url:
        yield url


@pytest.fixture
async def small(small_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=small_url, timeout=30) as c:
        yield c


@dataclass
class Read:
    """What one stream carried: its frames (seq, data, size in bytes on the wire) and its comments."""

    frames: list[tuple[int, dict[str, Any], int]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False

    @property
    def events(self) -> list[tuple[int, dict[str, Any]]]:
        return [(seq, data) for seq, data, _ in self.frames]


async def frames_of(response: httpx.Response, read: Read) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Parse the stream into `read`, yielding each frame; `read.ended` once the server has ended it."""
    seq: int | None = None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            read.comments.append(line)
        elif line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            assert seq is not None
            read.frames.append((seq, json.loads(line[6:]), len(f"id: {seq}\n{line}\n\n".encode())))
            yield read.events[-1]
            seq = None
        else:
            assert line == "", line
    read.ended = True


def open_stream(client: httpx.AsyncClient, session_id: str, last_event_id: int | None = None) -> Any:
    headers = {**h(session_id), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return client.stream("GET", "/api/updates", headers=headers)


async def post_notice(client: httpx.AsyncClient, session_id: str, i: int) -> None:
    r = await client.post("/api/system", params={"message": f"{i} {NOTICE}"}, headers=h(session_id))
    assert r.status_code == 200, r.text


async def gauge(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text  # the front door's own replica: only these tests' streams
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("aomi_stream_subscribers ")))


def subscribers(session_id: str) -> int:
    (actor,) = holders(app_namespace(TEST_NAMESPACE, "default"), session_id)
    return int(ray.get(actor.stats.remote())["sessions"][session_id]["subscribers"])


def numbers(events: list[tuple[int, dict[str, Any]]]) -> list[int]:
    """The numbers of the notices `post_notice` sent, in the order the events carried them."""
    assert {data["type"] for _, data in events} == {"system_notice"}
    return [int(data["message"].split()[0]) for _, data in events]


async def test_a_stream_ends_after_its_share_of_live_events_and_resuming_with_the_named_id_gets_every_event_once(
    small: httpx.AsyncClient,
) -> None:
    s = sid()
    assert (await small.post("/api/sessions", json={}, headers=h(s))).status_code == 200
    first, posted = Read(), 0
    async with open_stream(small, s) as response:
        assert response.status_code == 200
        frames = frames_of(response, first)
        await eventually(lambda: _open(small, s), timeout=15)  # counted while open: the zeros below mean closed
        while posted < 20:  # one at a time, each read before the next is sent: one event a batch
            await post_notice(small, s, posted)
            posted += 1
            if await anext(frames, None) is None:
                break
    assert first.ended, "the server ends the stream"
    assert first.comments[0] == ": keep-alive"
    ends = ENDS.match(first.comments[-1])
    assert ends is not None, first.comments
    sent, resume = int(ends[1]), int(ends[2])
    sizes = [size for _, _, size in first.frames]
    assert sent == sum(sizes) and BUDGET <= sent < BUDGET + sizes[-1]  # it ended at the first event past its share
    assert resume == first.frames[-1][0] and len(first.frames) == posted - 1 < 19
    await eventually(lambda: _closed(small, s), timeout=15)  # the stream's count given back: replica and session

    for _ in range(4):  # sent while no stream is open: replayed on resuming, more than the budget in all
        await post_notice(small, s, posted)
        posted += 1
    replayed = posted - len(first.frames)
    second = Read()
    async with open_stream(small, s, last_event_id=resume) as response:
        async for _ in frames_of(response, second):
            if len(second.frames) == replayed:  # the replayed ones did not count: the stream still carries live ones
                assert sum(size for _, _, size in second.frames) > BUDGET
                await post_notice(small, s, posted)
            if len(second.frames) == replayed + 1:
                break
    assert not second.ended and not [c for c in second.comments if ENDS.match(c)]
    stored = (await small.get("/api/events", params={"count": 1000}, headers=h(s))).json()
    got = first.events + second.events
    assert [seq for seq, _ in got] == list(range(1, len(stored) + 1))  # every event once, in order
    assert [data for _, data in got] == stored
    assert numbers(got) == list(range(posted + 1))


async def _open(client: httpx.AsyncClient, session_id: str) -> bool:
    return await gauge(client) == 1 and subscribers(session_id) == 1


async def _closed(client: httpx.AsyncClient, session_id: str) -> bool:
    return await gauge(client) == 0 and subscribers(session_id) == 0
