"""The peers side by side (issues 13 and 15): each server alone, the same httpx client, pinned and unpinned.

    .venv/bin/python -m bench.peers                 # the full run: both modes, every server, the targets
    .venv/bin/python -m bench.peers --quick --modes pinned --servers aomi     # a smoke test of one server
    .venv/bin/python -m bench.peers --aomi-args "--direct-ingress"          # the runtime started another way

Run from the repository's root. Servers (`--servers`), one after another (never two at once), each with its own
temporary directory and stopped before the next: bare FastAPI; a bare Serve endpoint through the proxy and under
direct ingress (and with two replicas); aomi-runtime as the README starts it (`aomi-runtime serve` and
`--aomi-args`), packed, and with two ingress replicas; LangGraph's `langgraph dev`; Google ADK's `api_server`
in memory and with its SQLite default. Modes (`--modes`): pinned (the server on core 0 under `taskset`, its
children inheriting the mask, the client on core 1) and unpinned. The phases are bench/peers/phases.py's; the
report (a table per mode, the runtime's own figures, issue 15's targets as ratios in the same run, the machine
and its load before and after) is printed as markdown. The peers run from a venv of their own (`--peers-venv`,
made from bench/peers/requirements.txt when it is missing or stale); a peer that cannot be installed or started
is reported and the others run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .phases import Row
from .report import MODES, report
from .runner import run_one
from .servers import PEERS, servers

ROOT = PEERS.parent.parent
ALL = (
    "fastapi,serve,serve-direct,serve-haproxy,aomi,aomi-packed,langgraph,adk,adk-sqlite,serve-direct-2,"
    "serve-haproxy-2,aomi-2"
)


def peers_venv(path: Path) -> str | None:
    """Makes and fills the peers' venv when it lacks what `requirements.txt` pins: None when ready, else why not."""
    requirements = PEERS / "requirements.txt"
    stamp = path / "bench-requirements.txt"  # what it was last filled with
    wanted = requirements.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return None
    print(f"installing the peers in {path} (a minute or two)...", file=sys.stderr, flush=True)
    python = path / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
        install = [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)]
        subprocess.run(install, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        return said[-1] if said else str(exc)
    stamp.write_text(wanted)
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests: a smoke test")
    parser.add_argument("--servers", default=ALL, help=f"which, in order (default {ALL})")
    parser.add_argument("--modes", default=",".join(MODES), help="pinned, unpinned or both (default both)")
    parser.add_argument("--aomi-args", default="", help='more `aomi-runtime serve` arguments, e.g. "--ingress proxy"')
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for every server (repeatable)")
    parser.add_argument("--packed", type=int, default=256, help="sessions per actor of the packed runtime")
    parser.add_argument("--peers-venv", default=str(ROOT / "bench" / ".peers-venv"), help="the peers' venv")
    parser.add_argument("--poll-interval", type=float, default=0.0, help="seconds between a turn's state polls")
    # (full run, --quick): a flag given explicitly wins over both
    sizes = {"reads": (500, 100), "creates": (100, 20), "turns": (100, 10), "seconds": (10.0, 3.0)}
    sizes["budget"] = (900.0, 240.0)
    parser.add_argument("--reads", type=int, help="sequential state reads (500; --quick 100)")
    parser.add_argument("--creates", type=int, help="sessions created (100; --quick 20)")
    parser.add_argument("--turns", type=int, help="sequential turns, and SSE deliveries (100; --quick 10)")
    parser.add_argument("--seconds", type=float, help="of concurrent reads (10; --quick 3)")
    parser.add_argument("--budget", type=float, help="seconds a server has for its workload (900; --quick 240)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients reading state")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds a server has to answer")
    args = parser.parse_args()
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.extras = True  # the runtime's own phases (bench/knobs.py leaves them out)
    args.chosen = [key.strip() for key in args.servers.split(",") if key.strip()]
    args.mode_list = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    known = {server.key for server in servers(args)}
    if unknown := [key for key in args.chosen if key not in known]:
        parser.error(f"unknown servers {unknown}; known: {', '.join(sorted(known))}")
    if bad := [mode for mode in args.mode_list if mode not in MODES]:
        parser.error(f"unknown modes {bad}; known: {', '.join(MODES)}")
    if bad := [pair for pair in args.env if "=" not in pair]:
        parser.error(f"--env takes NAME=VALUE, not {bad}")
    return args


def main() -> None:
    args = parse_args()
    known = {server.key: server for server in servers(args)}
    env = dict(pair.split("=", 1) for pair in args.env)
    load = os.getloadavg()
    why_not = peers_venv(Path(args.peers_venv)) if any(known[key].peer for key in args.chosen) else None
    by_mode: dict[str, list[Row]] = {}
    skipped = []
    for mode in args.mode_list:
        for key in args.chosen:
            server = known[key]
            if mode not in server.modes:
                continue
            if server.needs and not shutil.which(server.needs):
                skipped.append(f"{server.label} ({mode}): no `{server.needs}` on PATH")
                continue
            if server.peer and why_not:
                skipped.append(f"{server.label} ({mode}): the peers' venv could not be made: {why_not}")
                continue
            print(f"running {key} ({mode})...", file=sys.stderr, flush=True)
            by_mode.setdefault(mode, []).append(run_one(server, mode, args, env))
    print(report(by_mode, skipped, args, load))


if __name__ == "__main__":
    main()
