"""How HTTP reaches the runtime: by default its ingress replica answers on the user's port itself (Serve's direct
ingress, the shared runtime's way); `--ingress proxy` puts Serve's HTTP proxy there instead, with the same API,
streams and errors. A port already taken stops the start at once, saying so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil

from aomi_runtime import AsyncClient
from aomi_runtime.actors.node import LEAN_RAY_ENV
from aomi_runtime.serve_app.ingress import DIRECT_INGRESS_ENV
from aomi_runtime.serve_app.settings import Settings
from tests.conftest import free_port
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


def listener(port: int) -> str:
    """The command line (for a Ray actor, its process title) of the process listening on `port`."""
    (pid,) = {c.pid for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return " ".join(psutil.Process(pid).cmdline())


async def errors_and_a_client_turn(url: str) -> None:
    """What every way in answers alike: errors as JSON (no session id, an unknown route), a turn through the
    Python client."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        missing = await client.get("/api/state")
        assert missing.status_code == 400 and "X-Session-Id" in missing.json()["error"]
        unknown = await client.get("/api/nothing-here")
        assert unknown.status_code == 404 and "error" in unknown.json()
    async with AsyncClient(url) as runtime:
        session = await runtime.session()
        reply = await session.send("hi")
        assert reply.text == 'You said: "hi"' and reply.error is None
        assert [m.content for m in await session.messages()][-2:] == ["hi", reply.text]


def test_the_shared_runtime_is_answered_by_its_ingress_replica_with_no_proxy(
    runtime_url: str, runtime_settings: Settings
) -> None:
    assert httpx.get(f"{runtime_url}/health").text == "OK"
    assert "ServeReplica:aomi:Ingress" in listener(runtime_settings.port)


async def test_through_serves_proxy_the_api_answers_as_on_the_fast_path(tmp_path: Path, ray_tmp: str) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text(CONFIG)
    # Started without the lean Ray settings the tests' own Ray has: the CLI's `launch` must set them itself.
    server = Server(f"sqlite:///{tmp_path / 'aomi.db'}", ray_tmp, config, "--ingress", "proxy", unset=LEAN_RAY_ENV)
    try:
        assert "ProxyActor" in listener(server.port)
        ray_processes = [int(line.split()[0]) for line in processes_using(ray_tmp)]
        assert ray_processes, "no process of the CLI's Ray found"
        for pid in ray_processes:
            assert LEAN_RAY_ENV.items() | {(DIRECT_INGRESS_ENV, "0")} <= environ_of(pid).items(), f"process {pid}"
        s = str(uuid.uuid4())
        h = {"X-Session-Id": s}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            chat = await client.post("/api/chat", params={"message": '/tool long_task {"steps": 2}'}, headers=h)
            assert chat.status_code == 200, chat.text
            stream = await read_until(client, s, "processing_done")
            assert stream.seqs == list(range(1, stream.seqs[-1] + 1))
            assert stream.types.count("tool_update") == 2 and "tool_complete" in stream.types  # streamed, not held
            # Resumed from the middle with Last-Event-ID: the rest, none lost, none twice.
            cut = stream.seqs[len(stream.seqs) // 2]
            resumed = await read_until(client, s, "processing_done", last_event_id=cut)
            assert resumed.frames == [f for f in stream.frames if f[0] > cut]
            state = (await client.get("/api/state", headers=h)).json()
            assert state["messages"][-1]["content"] == 'The long_task tool returned: {"steps": 2, "status": "done"}'

        await errors_and_a_client_turn(server.url)
        assert processes_using(ray_tmp), "the check below would prove nothing: no Ray process found by its temp dir"
    finally:
        assert server.stop() == 0, "".join(server.output)
    assert "aomi-runtime stopped." in "".join(server.output)
    assert processes_using(ray_tmp) == [], "processes left behind after Ctrl-C"


def test_a_port_already_taken_stops_the_start_at_once_saying_so(ray_tmp: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for ingress in ("direct", "proxy"):
            command = ["serve", "--port", str(port), "--ingress", ingress]
            done = subprocess.run(
                [sys.executable, "-m", "aomi_runtime.serve_app.cli", *command],
                env={**os.environ, "RAY_TMPDIR": ray_tmp},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 1, done.stdout + done.stderr
            assert f"aomi-runtime: Cannot serve on 127.0.0.1:{port}" in done.stderr
            assert "Traceback" not in done.stderr
    assert processes_using(ray_tmp) == [], "Ray was started for nothing"


JOINED = """
import ray
from aomi_runtime.agent.errors import DeploymentError
from aomi_runtime.serve_app.launch import launch
from aomi_runtime.serve_app.settings import Settings

ray.init(address="local", include_dashboard=False, log_to_driver=False)  # a Ray as `ray start` leaves it
try:
    launch(Settings(database_url="sqlite:///{db}", port={port}))
except DeploymentError as exc:
    print("refused:", exc)
finally:
    ray.shutdown()
"""


def test_a_joined_ray_without_direct_ingress_is_refused_saying_how_to_serve(tmp_path: Path, ray_tmp: str) -> None:
    script = JOINED.format(db=tmp_path / "aomi.db", port=free_port())
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "RAY_TMPDIR": ray_tmp, DIRECT_INGRESS_ENV: "0"},
        capture_output=True,
        text=True,
    )
    assert "refused: Direct ingress is off in the Ray instance this process joined" in done.stdout, done.stderr
    assert "--ingress proxy" in done.stdout
    assert processes_using(ray_tmp) == []
