"""A one-machine stand-in for cluster.yaml's head node in Serve's HAProxy mode, for tests/deploy/test_haproxy.py:
Ray started with the head's Serve variables from cluster.yaml, Serve's HTTP port (HAProxy's, as deploy/serve.yaml
gives it) on `--port`, the runtime deployed with TWO ingress replicas on it. Prints the line the tests' `Server`
waits for; Ctrl-C (SIGINT) stops it all.

    python -m tests.deploy.haproxy_node --port P --database-url URL --config PATH [--serve-proxy-port Q]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from pathlib import Path

from aomi_runtime.serve_app.ingress import DRAINING_ENV
from tests.conftest import free_port
from tests.deploy.files import ray_start_env

REPLICAS = 2
HAPROXY_DIR = "h"  # short: HAProxy takes socket paths of at most 97 bytes, and Serve adds the node's id (56)
FILES = {
    "CONFIG_FILE_LOC": "haproxy.cfg",
    "SOCKET_PATH": "admin.sock",
    "SERVER_STATE_BASE": "",
    "SERVER_STATE_FILE": "server-state",
    "METRICS_SOCKET_PATH": "metrics.sock",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--serve-proxy-port", type=int, default=0, help="Serve's own proxy (HAProxy's fallback)")
    args = parser.parse_args()
    # Serve's variables as cluster.yaml's head starts Ray with them, and what this machine needs besides: on a
    # cluster one HAProxy runs per machine, with fixed ports (stats 8404, metrics 9101, the fallback proxy's 8500)
    # and files in /tmp/haproxy-serve, where here another test run's may be; and stopping waits for no load
    # balancer's 30 s, as `launch` does.
    os.environ.update({k: v for k, v in ray_start_env().items() if k.startswith("RAY_SERVE_")})
    for port in ("HAPROXY_STATS_PORT", "HAPROXY_METRICS_PORT"):
        os.environ[f"RAY_SERVE_{port}"] = str(free_port())
    os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(args.serve_proxy_port or free_port())
    files = Path(os.environ["RAY_TMPDIR"]) / HAPROXY_DIR  # Serve adds the node's id
    for name, file in FILES.items():
        os.environ[f"RAY_SERVE_HAPROXY_{name}"] = str(files / file)
    os.environ[DRAINING_ENV] = "0"

    import ray
    from ray import serve

    from aomi_runtime.serve_app.app import Ingress
    from aomi_runtime.serve_app.settings import Settings

    settings = Settings(database_url=args.database_url, config=args.config, port=args.port, keepalive_seconds=1)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        app = Ingress.options(num_replicas=REPLICAS).bind(settings)  # type: ignore[attr-defined]
        serve.run(app, name="aomi", route_prefix="/")
        print(f"aomi-runtime serving on http://{settings.host}:{settings.port} (HAProxy mode)", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
        serve.delete("aomi")
        asyncio.run(settings.runtime().stop())
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown(wait_for_processes=True)
    print("aomi-runtime stopped.", flush=True)


if __name__ == "__main__":
    main()
