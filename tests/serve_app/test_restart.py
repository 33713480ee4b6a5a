"""The whole runtime stopped and started again on the same database, through the CLI a user runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from unittest.mock import ANY

import httpx

from tests.conftest import free_port
from tests.helpers import processes_using
from tests.serve_app.sse_client import read_until

STARTUP_SECONDS = 180  # a loaded 2-core machine has taken over 90 s to start Ray and Serve
STOP_SECONDS = 20  # ~6 s on an idle 2-core machine
CLI = ("-m", "aomi_runtime.serve_app.cli", "serve")


class Server:
    """`aomi-runtime serve` (or another `program` taking its options and printing its lines) in a process group of
    its own, with a Ray temp dir of its own, on either ingress (`"--ingress", "proxy"` among `options` for Serve's
    proxy); `url` is the one it prints, checked to be its port."""

    def __init__(
        self,
        database_url: str,
        ray_tmp: str,
        config: Path,
        *options: str,
        unset: Collection[str] = (),
        program: Sequence[str] = CLI,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.stop_seconds = 0.0  # Ctrl-C to exit
        kept = {name: value for name, value in os.environ.items() if name not in unset}
        env = kept | dict(env or {}) | {"RAY_TMPDIR": ray_tmp}
        command = [sys.executable, *program, "--port", str(self.port), *options]
        self.process = subprocess.Popen(
            [*command, "--database-url", database_url, "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        # Every line, read as it comes by a thread of its own: lines read ahead while looking for the URL would
        # otherwise be lost to `communicate`, which reads the pipe itself (a console line printed right after the
        # URL's was, now and then).
        self.output: list[str] = []
        self._url: str | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.url = self._started()
            assert self.url == f"http://127.0.0.1:{self.port}", "".join(self.output)
        except BaseException:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as printed:
            for line in printed:
                self.output.append(line)
                if self._url is None and "aomi-runtime serving on" in line:
                    self._url = line.split("serving on ")[1].split(" ")[0].rstrip(",")
                    self._ready.set()
        self._ready.set()  # the server exited

    def _started(self) -> str:
        """The URL the server says it serves on, once it says so."""
        assert self._ready.wait(STARTUP_SECONDS), "the server did not start:\n" + "".join(self.output)
        if self._url is None:
            raise AssertionError("the server exited:\n" + "".join(self.output))
        return self._url

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit code once every line it printed is read."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.stop_seconds = time.monotonic() - started
        self._reader.join(timeout=30)
        return self.process.returncode


CONFIG = """
apps:
  - name: default
    models:
      - {{label: Scripted, slug: scripted}}
      - {{label: Fake GPT, slug: fake-gpt, provider: openai, model: restart-gpt, base_url: "{base}/v1"}}
  - name: research
    public: false
    tools: [time_now]
"""


async def test_everything_is_back_after_a_restart_and_the_stream_resumes_without_loss(
    tmp_path: Path, ray_tmp: str, fake_provider: tuple[object, str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'aomi.db'}"
    config = tmp_path / "apps.yaml"
    config.write_text(CONFIG.format(base=fake_provider[1]))
    s = str(uuid.uuid4())
    h = {"X-Session-Id": s}
    wallet = {"X-Session-Id": str(uuid.uuid4())}  # a session waiting for the user's wallet across the restart
    send = {"message": '/tool send_eth {"to": "0xabc", "value": "5"}', "user_state": '{"theme": "dark"}'}

    first = Server(database_url, ray_tmp, config)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            await client.post(
                "/api/chat", params={"message": '/tool long_task {"steps": 2}', "public_key": "0xk"}, headers=h
            )
            before = await read_until(client, s, "title_changed")
            await client.post(f"/api/sessions/{s}/archive")
            assert (await client.get("/api/control/apps")).json() == ["default"]
            assert (await client.get("/console")).headers["content-type"].startswith("text/html")
            keyless = await client.post("/api/chat", params={"message": "hi", "app": "research"}, headers=h)
            assert keyless.status_code == 401
            switched = await client.post("/api/control/model", params={"rig": "Fake GPT"}, headers=h)
            assert switched.json() == {"success": True, "rig": "fake-gpt", "baml": None, "created": False}
            state_before = (await client.get("/api/state", headers=h)).json()
            await client.post("/api/chat", params=send, headers=wallet)
            asked = (await read_until(client, wallet["X-Session-Id"], "processing_done", after=0)).seqs[-1]
        assert processes_using(ray_tmp), "the check below would prove nothing: no Ray process found by its temp dir"
    finally:
        assert first.stop() == 0, "".join(first.output)
    assert "aomi-runtime stopped." in "".join(first.output)
    assert f"\naomi-runtime console at {first.url}/console\n" in "".join(first.output)  # beside the API's line
    # Quick, on the fast path too: a direct-ingress replica would otherwise wait 30 s for a load balancer.
    assert first.stop_seconds < STOP_SECONDS, f"stopping took {first.stop_seconds:.1f} s"
    assert processes_using(ray_tmp) == [], "processes left behind after Ctrl-C"

    second = Server(database_url, ray_tmp, config)
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            assert (await client.get("/api/state", headers=h)).json() == state_before
            listed = (await client.get("/api/sessions", params={"public_key": "0xk"})).json()
            assert [(x["session_id"], x["is_archived"]) for x in listed] == [(s, True)]
            events = (await client.get("/api/events", params={"count": 1000}, headers=h)).json()
            assert events == [data for _, data in before.frames]

            # Resume from the middle: the stored rest first, then the new turn, live; none lost, none twice.
            cut = before.seqs[len(before.seqs) // 2]
            await client.post("/api/chat", params={"message": "after the restart"}, headers=h)
            resumed = await read_until(client, s, "processing_done", last_event_id=cut, past=before.seqs[-1])
            assert resumed.seqs == list(range(cut + 1, resumed.seqs[-1] + 1))
            stored_rest = [f for f in before.frames if f[0] > cut]
            assert resumed.frames[: len(stored_rest)] == stored_rest
            assert resumed.types[len(stored_rest) :][0] == "processing_started"
            # The wallet request is still staged; its outcome, posted now, is answered by a follow-up turn.
            staged = (await client.get("/api/state", headers=wallet)).json()["user_state"]
            assert staged == {"theme": "dark", "pending_txs": {"1": ANY}}
            posted = {
                "type": "wallet:tx_complete",
                "payload": {"txHash": "0x77", "status": "success", "pending_tx_ids": [1]},
            }
            assert (await client.post("/api/system", params={"message": json.dumps(posted)}, headers=wallet)).is_success
            await read_until(client, wallet["X-Session-Id"], "processing_done", after=asked)
            answered = (await client.get("/api/state", headers=wallet)).json()
            assert "0x77" in answered["messages"][-1]["content"] and answered["user_state"] == {"theme": "dark"}
            final = (await client.get("/api/state", headers=h)).json()
            assert final["messages"][: len(state_before["messages"])] == state_before["messages"]
            assert final["messages"][-1]["content"] == "Echo: after the restart"  # the model chosen before
    finally:
        assert second.stop() == 0, "".join(second.output)
    assert processes_using(ray_tmp) == []
