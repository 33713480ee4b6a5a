"""How each server is asked for a session's state, a new session and a turn, over one httpx client.

A turn has one shape for every server: send the message, then read the session's state until the reply to it is
readable (each echoes `You said: "<message>"`; the message is a token of its own, so the reply is found in the
state's JSON, where every server escapes the quotes as `\\"`). A poll names the ETag of the state it read last
in `If-None-Match`, as a browser's `fetch` does: a server that answers 304 spares itself the body.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

TURN_TIMEOUT = 60.0


def reply_to(message: str) -> str:
    return f'You said: \\"{message}\\"'


class Api:
    """A server's routes. `send` starts a turn; `send_blocks`: its answer comes only once the turn is done, so
    the state is polled while it runs."""

    ready_path = "/health"
    send_blocks = False

    def __init__(self, http: httpx.AsyncClient, poll_interval: float = 0.0) -> None:
        self.http = http
        self.poll_interval = poll_interval

    async def read(self, session_id: str, etag: str | None = None) -> httpx.Response:
        return await self.http.get(self.state_path(session_id), headers=self.headers(session_id, etag))

    def state_path(self, session_id: str) -> str:
        raise NotImplementedError

    def headers(self, session_id: str, etag: str | None) -> dict[str, str]:
        return {"If-None-Match": etag} if etag else {}

    async def create(self, session_id: str) -> httpx.Response:
        raise NotImplementedError

    async def send(self, session_id: str, message: str) -> httpx.Response:
        raise NotImplementedError

    async def turn(self, session_id: str, message: str) -> httpx.Response:
        """`message` sent, then the state read until the reply to it is readable: that read is the answer (or
        the first failed request's)."""
        deadline = time.perf_counter() + TURN_TIMEOUT
        sending = asyncio.create_task(self.send(session_id, message))
        try:
            if not self.send_blocks and not (sent := await sending).is_success:
                return sent
            reply, etag = reply_to(message), None
            while time.perf_counter() < deadline:
                if sending.done() and not (sent := sending.result()).is_success:
                    return sent
                response = await self.read(session_id, etag)
                if response.status_code != 304:
                    if not response.is_success or reply in response.text:
                        return response
                    etag = response.headers.get("etag")
                if self.poll_interval:
                    await asyncio.sleep(self.poll_interval)
            raise TimeoutError(f"no reply to {message!r} in {TURN_TIMEOUT:.0f} s")
        finally:
            await asyncio.gather(sending, return_exceptions=True)  # turns never overlap

    async def close(self) -> None:
        return None


class FloorApi(Api):
    def state_path(self, session_id: str) -> str:
        return f"/state/{session_id}"

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post(f"/sessions/{session_id}")

    async def send(self, session_id: str, message: str) -> httpx.Response:
        return await self.http.post(f"/turn/{session_id}", params={"message": message})


class AomiApi(Api):
    """docs/api.md. Also the SSE stream of a session (`GET /api/updates`), read by a task of its own, on which
    a `POST /api/system`'s frame is timed."""

    def __init__(self, http: httpx.AsyncClient, poll_interval: float = 0.0) -> None:
        super().__init__(http, poll_interval)
        self.streams: dict[str, asyncio.Task[None]] = {}
        self.waiting: dict[str, asyncio.Future[float]] = {}  # token -> when its frame arrived

    def state_path(self, session_id: str) -> str:
        return "/api/state"

    def headers(self, session_id: str, etag: str | None) -> dict[str, str]:
        return {"X-Session-Id": session_id, **super().headers(session_id, etag)}

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post("/api/sessions", headers={"X-Session-Id": session_id}, json={})

    async def send(self, session_id: str, message: str) -> httpx.Response:
        params = {"message": message, "request_id": uuid.uuid4().hex}
        return await self.http.post("/api/chat", params=params, headers={"X-Session-Id": session_id})

    async def _follow(self, session_id: str, opened: asyncio.Event) -> None:
        headers = {"X-Session-Id": session_id, "Accept": "text/event-stream"}
        async with self.http.stream("GET", "/api/updates", headers=headers, timeout=None) as response:
            async for line in response.aiter_lines():
                arrived = time.perf_counter()
                opened.set()  # the stream answers with a keep-alive comment at once
                if line.startswith("data:"):
                    for token in [t for t in self.waiting if t in line]:
                        if not (waiter := self.waiting.pop(token)).done():
                            waiter.set_result(arrived)

    async def open_stream(self, session_id: str) -> None:
        if session_id not in self.streams:
            opened = asyncio.Event()
            self.streams[session_id] = asyncio.create_task(self._follow(session_id, opened))
            await asyncio.wait_for(opened.wait(), timeout=60)

    async def system_delivery(self, session_id: str) -> tuple[float, float]:
        """POST /api/system sent -> its frame received on the session's stream, and its answer received -> the
        frame, in seconds. The session publishes the event inside the POST, once stored: the stream's own
        delivery lies between the two."""
        await self.open_stream(session_id)
        token = f"peers-{uuid.uuid4().hex}"
        arrived = self.waiting[token] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        response = await self.http.post("/api/system", params={"message": token}, headers={"X-Session-Id": session_id})
        answered = time.perf_counter()
        if not response.is_success:
            self.waiting.pop(token, None)
            raise RuntimeError(f"POST /api/system: {response.status_code} {response.text[:200]}")
        frame = await asyncio.wait_for(arrived, timeout=30)
        return frame - started, frame - answered

    async def close(self) -> None:
        for task in self.streams.values():
            task.cancel()
        await asyncio.gather(*self.streams.values(), return_exceptions=True)


class LangGraphApi(Api):
    """A turn is a background run (`POST /threads/{id}/runs`), answered at once; the thread's state shows the
    reply once the run is done."""

    ready_path = "/ok"

    def state_path(self, session_id: str) -> str:
        return f"/threads/{session_id}/state"

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post("/threads", json={"thread_id": session_id})

    async def send(self, session_id: str, message: str) -> httpx.Response:
        body = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": message}]}}
        return await self.http.post(f"/threads/{session_id}/runs", json=body)


class AdkApi(Api):
    """`POST /run` answers once the agent is done: the session is read while it runs, as a client would poll."""

    ready_path = "/list-apps"
    send_blocks = True
    APP, USER = "echo", "bench"

    def state_path(self, session_id: str) -> str:
        return f"/apps/{self.APP}/users/{self.USER}/sessions/{session_id}"

    async def create(self, session_id: str) -> httpx.Response:
        return await self.http.post(f"/apps/{self.APP}/users/{self.USER}/sessions", json={"session_id": session_id})

    async def send(self, session_id: str, message: str) -> httpx.Response:
        body = {
            "app_name": self.APP,
            "user_id": self.USER,
            "session_id": session_id,
            "new_message": {"role": "user", "parts": [{"text": message}]},
        }
        return await self.http.post("/run", json=body)
