"""The servers of the table: how each is started (pinned to core 0 or not), where it answers, and stopping it.

Each runs in a temporary directory of its own (`/tmp/aomi-ray-peers-*`, Ray's session files in it through
`RAY_TMPDIR`), removed afterwards. A server built on Serve announces its URLs on a line of its output
(`... serving on URL[, URL] (...`): the proxy's, or with Serve's direct ingress each ingress replica's own.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from .apis import AdkApi, AomiApi, Api, FloorApi, LangGraphApi
from .procs import tree

PEERS = Path(__file__).resolve().parent
SERVER_CORE, CLIENT_CORE = 0, 1
ANNOUNCED = re.compile(r"serving on (?P<urls>http://[^ ,]+(?:, http://[^ ,]+)*)")
HISTORY = re.compile(r"history: (?P<url>sqlite:///[^;]+);")

HAPROXY = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
Command = Callable[[int, Path], list[str]]  # (port, working directory) -> the server's command line


@dataclass
class Server:
    key: str  # for --servers
    label: str  # the table's first column
    api: type[Api]
    command: Command
    peer: bool = False  # runs from the peers' venv
    prepare: Callable[[Path], None] = lambda workdir: None
    announces: bool = False  # prints the URLs it serves on (Serve): else it answers on the port it is given
    runtime: bool = False  # aomi-runtime: also the SSE and revalidation phases
    floor: bool = False  # a bare Serve endpoint: what the runtime's ratios are taken against
    modes: tuple[str, ...] = ("pinned", "unpinned")  # where it is run
    env: dict[str, str] = field(default_factory=dict)
    expects: str | None = None  # a file (glob) its directory must hold after the run: it ran as labelled
    needs: str | None = None  # a program it needs on PATH: skipped with the reason without it
    reads_only: bool = False  # no turns nor creates: a floor's replicas each keep sessions of their own


def floor(kind: str, *options: str) -> Command:
    return lambda port, workdir: [sys.executable, str(PEERS / "floors.py"), kind, "--port", str(port), *options]


def aomi(extra: list[str], tuned: list[str] | None = None) -> Command:
    """`aomi-runtime serve` as the README starts it (its SQLite file `aomi.db` in the server's directory, the
    working directory), with `extra` arguments; `tuned`: through bench/peers/tuned.py, with its options."""
    cli = [str(Path(sys.executable).parent / "aomi-runtime")]
    if tuned is not None:
        cli = [sys.executable, str(PEERS / "tuned.py"), *tuned, "--"]
    return lambda port, workdir: [*cli, "serve", "--port", str(port), *extra]


def langgraph(venv: Path) -> Command:
    def command(port: int, workdir: Path) -> list[str]:
        options = ["--config", "langgraph.json", "--port", str(port), "--no-browser", "--no-reload"]
        return [str(venv / "bin" / "langgraph"), "dev", *options]

    return command


def copy_graph(workdir: Path) -> None:
    # `langgraph dev` reads the graph's path relative to its working directory, where it also keeps its state.
    for name in ("langgraph.json", "echo_graph.py"):
        shutil.copy(PEERS / name, workdir / name)


def copy_agents(workdir: Path) -> None:
    # ADK's local storage (its SQLite session file, `.adk/`) goes beside the agent: not in the repository.
    shutil.copytree(PEERS / "adk_agents", workdir / "adk_agents", ignore=shutil.ignore_patterns("__pycache__"))


def adk(venv: Path, sessions: str | None) -> Command:
    """`adk api_server`; `sessions`: the session service's URI, or None for ADK's default (SQLite in `.adk/`)."""

    def command(port: int, workdir: Path) -> list[str]:
        services = ["--artifact_service_uri", "memory://", "--memory_service_uri", "memory://"]
        if sessions is not None:
            services += ["--session_service_uri", sessions]
        options = ["--port", str(port), "--no-reload", *services, str(workdir / "adk_agents")]
        return [str(venv / "bin" / "adk"), "api_server", *options]

    return command


def servers(args: argparse.Namespace) -> list[Server]:
    venv, extra = Path(args.peers_venv), shlex.split(args.aomi_args)
    packed = ["--sessions-per-actor", str(args.packed)]
    direct = ("--direct-ingress",)
    aomi_label = f"**aomi-runtime** (`aomi-runtime serve{' ' + args.aomi_args if args.aomi_args else ''}`)"
    return [
        Server("fastapi", "bare FastAPI (floor a)", FloorApi, floor("fastapi")),
        Server("serve", "bare Serve endpoint, through the proxy", FloorApi, floor("serve"), announces=True, floor=True),
        Server(
            "serve-direct",
            "bare Serve endpoint, direct ingress",
            FloorApi,
            floor("serve", *direct),
            announces=True,
            floor=True,
        ),
        Server("aomi", aomi_label, AomiApi, aomi(extra), announces=True, runtime=True),
        Server(
            "aomi-packed",
            f"**aomi-runtime**, packed: {args.packed} sessions per actor",
            AomiApi,
            aomi([*extra, *packed]),
            announces=True,
            runtime=True,
        ),
        Server("langgraph", "LangGraph `langgraph dev`", LangGraphApi, langgraph(venv), peer=True, prepare=copy_graph),
        Server(
            "adk", "Google ADK `api_server` (memory)", AdkApi, adk(venv, "memory://"), peer=True, prepare=copy_agents
        ),
        Server(
            "adk-sqlite",
            "Google ADK `api_server` (its default: SQLite)",
            AdkApi,
            adk(venv, None),
            peer=True,
            prepare=copy_agents,
            expects="adk_agents/echo/.adk/session.db",
        ),
        # Serve's HAProxy mode (Ray 2.60): HAProxy on the port, each replica answering it on a port of its own.
        Server(
            "serve-haproxy",
            "bare Serve endpoint behind HAProxy",
            FloorApi,
            floor("serve"),
            announces=True,
            floor=True,
            env=HAPROXY,
            needs="haproxy",
        ),
        # Two ingress replicas on the 2-core node: only unpinned, where there are two cores.
        Server(
            "serve-direct-2",
            "bare Serve endpoint, direct ingress, 2 replicas",
            FloorApi,
            floor("serve", *direct, "--replicas", "2"),
            announces=True,
            modes=("unpinned",),
            reads_only=True,
        ),
        Server(
            "serve-haproxy-2",
            "bare Serve endpoint behind HAProxy, 2 replicas",
            FloorApi,
            floor("serve", "--replicas", "2"),
            announces=True,
            modes=("unpinned",),
            reads_only=True,
            env=HAPROXY,
            needs="haproxy",
        ),
        Server(
            "aomi-2",
            "**aomi-runtime**, 2 ingress replicas (bench/peers/tuned.py)",
            AomiApi,
            aomi(extra, tuned=["--replicas", "2"]),
            announces=True,
            modes=("unpinned",),
        ),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(workdir: Path, haproxy: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RAY_TMPDIR=str(workdir),  # Ray's session files in the server's own directory, not /tmp/ray
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        PYTHONUNBUFFERED="1",
        # Where Serve's HAProxy mode keeps its files (by default /tmp/haproxy-serve, shared by every instance).
        RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(haproxy / "haproxy.cfg"),
        RAY_SERVE_HAPROXY_SOCKET_PATH=str(haproxy / "admin.sock"),
        RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(haproxy),
        RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(haproxy / "server-state"),
        **extra,
    )
    env.pop("VIRTUAL_ENV", None)
    return env


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path
    urls: list[str] = field(default_factory=list)  # where it answers; the first for sequential requests
    database: str | None = None  # the runtime's history, as it announced it

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def announced(self) -> bool:
        """Whether the server has printed where it serves: `urls` and `database` filled in when it has."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return False
        if not (found := ANNOUNCED.search(text)):
            return False
        self.urls = found["urls"].split(", ")
        if history := HISTORY.search(text, found.end()):
            self.database = history["url"]
        return True


@contextmanager
def started(server: Server, pinned: bool, env: dict[str, str]) -> Iterator[Running]:
    """`server` (under `taskset -c 0` if `pinned`) in a temporary directory of its own; stopped (SIGINT, then
    SIGKILL to each of its processes left after 60 s) and its directory removed on the way out."""
    workdir = Path(tempfile.mkdtemp(prefix="aomi-ray-peers-", dir="/tmp"))
    port = free_port()
    # A short directory: Serve adds a 56-character one below it, and HAProxy takes socket paths of 97 at most.
    haproxy = Path(tempfile.mkdtemp(prefix="aomi-hp-", dir="/tmp"))
    server.prepare(workdir)
    command = server.command(port, workdir)
    if pinned:
        command = ["taskset", "-c", str(SERVER_CORE), *command]
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=server_env(workdir, haproxy, {**server.env, **env}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(process, port, workdir, log)
    if not server.announces:
        running.urls = [f"http://127.0.0.1:{port}"]
    try:
        yield running
    finally:
        stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(haproxy, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    pids = tree(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    for pid in pids:  # whatever of it is left: only the processes this server started
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    process.wait()


def wait_announced(running: Running, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not running.announced():
        if running.process.poll() is not None:
            raise RuntimeError(f"exited with {running.process.returncode} before serving:\n{running.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"did not say where it serves in {timeout:.0f} s:\n{running.tail()}")
        time.sleep(0.5)
