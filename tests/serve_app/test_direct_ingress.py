"""Serve's direct ingress (`aomi-runtime serve --direct-ingress`): the ingress replica answers HTTP on a port of
its own, with no proxy between; the same API, streams and errors as through the proxy, which still answers."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from aomi_runtime import AsyncClient
from aomi_runtime.actors.node import LEAN_RAY_ENV
from tests.helpers import processes_using
from tests.serve_app.sse_client import read_until
from tests.serve_app.test_restart import Server

CONFIG = """
apps:
  - name: default
    models:
      - {label: Scripted, slug: scripted}
"""


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


async def test_the_api_answers_on_the_replicas_own_port_as_through_the_proxy(tmp_path: Path, ray_tmp: str) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text(CONFIG)
    # Started without the lean Ray settings the tests' own Ray has: the CLI's `launch` must set them itself.
    server = Server(f"sqlite:///{tmp_path / 'aomi.db'}", ray_tmp, config, "--direct-ingress", unset=LEAN_RAY_ENV)
    try:
        assert urlsplit(server.url).port != server.port, f"still the proxy's address: {server.url}"
        ray_processes = [int(line.split()[0]) for line in processes_using(ray_tmp)]
        assert ray_processes, "no process of the CLI's Ray found"
        for pid in ray_processes:
            assert LEAN_RAY_ENV.items() <= environ_of(pid).items(), f"process {pid}"
        s = str(uuid.uuid4())
        h = {"X-Session-Id": s}
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as direct,
            httpx.AsyncClient(base_url=server.proxy_url, timeout=30) as proxied,
        ):
            chat = await direct.post("/api/chat", params={"message": '/tool long_task {"steps": 2}'}, headers=h)
            assert chat.status_code == 200, chat.text
            stream = await read_until(direct, s, "processing_done")
            assert stream.seqs == list(range(1, stream.seqs[-1] + 1))
            assert stream.types.count("tool_update") == 2 and "tool_complete" in stream.types  # streamed, not held
            state = (await direct.get("/api/state", headers=h)).json()
            assert state["messages"][-1]["content"] == 'The long_task tool returned: {"steps": 2, "status": "done"}'
            assert (await proxied.get("/api/state", headers=h)).json() == state

            missing = await direct.get("/api/state")
            assert missing.status_code == 400 and "X-Session-Id" in missing.json()["error"]
            unknown = await direct.get("/api/nothing-here")
            assert unknown.status_code == 404 and "error" in unknown.json()

        async with AsyncClient(server.url) as client:
            session = await client.session()
            reply = await session.send("hi")
            assert reply.text == 'You said: "hi"' and reply.error is None
            assert [m.content for m in await session.messages()][-2:] == ["hi", reply.text]
        assert processes_using(ray_tmp), "the check below would prove nothing: no Ray process found by its temp dir"
    finally:
        assert server.stop() == 0, "".join(server.output)
    assert "aomi-runtime stopped." in "".join(server.output)
    assert processes_using(ray_tmp) == [], "processes left behind after Ctrl-C"
