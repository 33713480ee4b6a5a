"""Where an unread event stream buffers: one SSE client that never reads while its session makes many events.

    .venv/bin/python bench/slow_stream.py [--megabytes 16]

Starts its own local Ray (temp dir /tmp/aomi-ray-*), Serve (port 8767) and SQLite, and stops them. A raw
socket with a 4 KiB receive buffer opens `GET /api/updates` and never reads; ~32 KiB system notices then make
about `--megabytes` MiB of events on that session. Prints the memory (PSS) of Serve's HTTP proxy and of the
ingress replica before, while the stuck client is connected, and after it closed; then how much the stuck
client could still read, and whether the runtime had ended its stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
import uuid

import httpx
import psutil

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

PORT = 8767
NOTICE_BYTES = 32 * 1024


def serve_processes() -> dict[str, psutil.Process]:
    found = {}
    for p in psutil.Process().children(recursive=True):
        try:
            title = " ".join(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "ProxyActor" in title:
            found["HTTP proxy"] = p
        elif "ServeReplica:aomi" in title:
            found["ingress replica"] = p
    return found


def memory() -> dict[str, int]:
    return {name: p.memory_full_info().pss for name, p in serve_processes().items()}


def stuck_client(session_id: str) -> socket.socket:
    """Opens the stream and never reads: its kernel buffer is kept small, so the server's writes block soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", PORT))
    head = f"GET /api/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session-Id: {session_id}\r\n"
    sock.sendall(head.encode() + b"Accept: text/event-stream\r\n\r\n")
    return sock


async def produce(session_id: str, megabytes: int) -> tuple[int, float]:
    """Post ~32 KiB system notices until about `megabytes` MiB of events exist (small answers, so that nothing
    but the stream carries the volume); returns the last seq and the seconds it took."""
    headers = {"X-Session-Id": session_id}
    posts = max(1, megabytes * 1024 * 1024 // NOTICE_BYTES)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=120) as client:
        r = await client.post("/api/chat", params={"message": "hello"}, headers=headers)  # the session exists
        assert r.status_code == 200, r.text

        async def post(i: int) -> None:
            r = await client.post("/api/system", params={"message": f"{i} " + "x" * NOTICE_BYTES}, headers=headers)
            assert r.status_code == 200, r.text

        for first in range(0, posts, 8):  # 8 at a time: the session stores them in order, in fewer commits
            await asyncio.gather(*(post(i) for i in range(first, min(posts, first + 8))))
        last_seq = int((await client.get("/api/state", headers=headers)).json()["last_event_id"])
    return last_seq, time.perf_counter() - started


def drain(sock: socket.socket, seconds: float) -> bytes:
    """What the stuck client can read now, for `seconds` at most."""
    sock.settimeout(0.5)
    chunks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=16)
    args = parser.parse_args()

    from load import local_runtime  # bench/load.py, beside this script

    with local_runtime(PORT, "aomi-slow") as settings:
        session_id = str(uuid.uuid4())
        before = memory()
        sock = stuck_client(session_id)
        last_seq, seconds = asyncio.run(produce(session_id, args.megabytes))
        time.sleep(3.0)  # let whatever is in flight land
        during = memory()
        received = drain(sock, 20.0)
        sock.close()
        time.sleep(3.0)
        after = memory()
    print(f"{args.megabytes} MiB of events asked for, last seq {last_seq}, made in {seconds:.1f} s")
    print(f"stream budget AOMI_STREAM_MAX_BYTES: {settings.stream_max_bytes} bytes")
    print("| process | PSS before MiB | stuck client connected MiB | after it closed MiB |")
    print("|---|---|---|---|")
    for name in before:
        print(f"| {name} | {before[name] / 2**20:.0f} | {during[name] / 2**20:.0f} | {after[name] / 2**20:.0f} |")
    ended = received.endswith(b"\r\n0\r\n\r\n")
    print(f"the stuck client could then read {len(received) / 2**20:.1f} MiB; stream ended by the runtime: {ended}")
    print(f"last bytes: {received[-300:].decode(errors='replace')!r}")


if __name__ == "__main__":
    main()
