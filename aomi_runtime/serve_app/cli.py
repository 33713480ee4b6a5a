"""`aomi-runtime serve`: start Ray (or join a cluster) and Serve, print the URL, serve until Ctrl-C, clean up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .settings import Settings

log = logging.getLogger("aomi_runtime")

APP_NAME = "aomi"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aomi-runtime", description="The Aomi agent runtime on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API until Ctrl-C")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; AOMI_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000; AOMI_PORT)")
    serve.add_argument("--database-url", help="history database (default sqlite:///aomi.db; AOMI_DATABASE_URL)")
    serve.add_argument("--address", help="join this running Ray cluster instead of starting a local one")
    return parser


def serve_until_stopped(settings: Settings, address: str | None) -> None:
    import ray
    from ray import serve

    from ..actors.runtime import Runtime
    from .app import build_app

    local = address is None
    if local:
        # Ray 2.60 turns token auth on for clusters started after a local init; a local run needs none.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local" if local else address, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
        url = f"http://{settings.host}:{settings.port}"
        print(f"aomi-runtime serving on {url} (history: {settings.database_url}); Ctrl-C stops it.", flush=True)
        _wait_for_signal()
        print("aomi-runtime stopping...", flush=True)
    finally:
        try:
            serve.delete(APP_NAME)
            asyncio.run(Runtime(settings.apps, settings.database_url, settings.namespace).stop())
            serve.shutdown()
        finally:
            ray.shutdown()
    print("aomi-runtime stopped.", flush=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {
        k: v
        for k, v in {"host": args.host, "port": args.port, "database_url": args.database_url}.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        print(f"aomi-runtime: invalid settings: {exc}", file=sys.stderr)
        return 2
    serve_until_stopped(settings, args.address)
    return 0


if __name__ == "__main__":
    sys.exit(main())
