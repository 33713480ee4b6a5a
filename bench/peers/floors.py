"""The two floors of bench/peers.py: sessions in a dict of one process, served by bare FastAPI or by Ray Serve.

    python bench/peers/floors.py fastapi --port P   # floor a: uvicorn, one process
    python bench/peers/floors.py serve --port P     # floor b: the same app as a Serve deployment, on a local Ray
        [--direct-ingress] [--replicas N]           # Serve's direct ingress; N ingress replicas

Both answer the same routes from the same code: GET /state/{id}, POST /sessions/{id} (create), POST /turn/{id}
(append the message and an echo, answer the messages), GET /health. Floor b starts Ray as `aomi-runtime serve`
does (its environment, no dashboard, Serve's access log off), so the difference between a and b is Serve's,
and between b and the runtime the runtime's. Floor b prints where it serves (`floor serving on URL[, URL]`): the
proxy, or with `--direct-ingress` each replica's own port, as `aomi-runtime serve` does. Serves until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

app = FastAPI()
SESSIONS: dict[str, list[dict[str, str]]] = {}


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("OK")


@app.post("/sessions/{session_id}")
async def create(session_id: str) -> dict[str, Any]:
    SESSIONS.setdefault(session_id, [])
    return {"session_id": session_id}


@app.get("/state/{session_id}")
async def state(session_id: str) -> dict[str, Any]:
    # Each replica keeps its own dict: behind a balancer, a session another replica made reads as empty here.
    return {"messages": SESSIONS.get(session_id, [])}


@app.post("/turn/{session_id}")
async def turn(session_id: str, message: str) -> dict[str, Any]:
    if session_id not in SESSIONS:
        raise HTTPException(404, "no such session")
    SESSIONS[session_id] += [
        {"sender": "user", "content": message},
        {"sender": "agent", "content": f'You said: "{message}"'},
    ]
    return {"messages": SESSIONS[session_id]}


def serve_fastapi(port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_on_ray(port: int, direct_ingress: bool, replicas: int) -> None:
    import ray
    from ray import serve
    from ray.serve.schema import LoggingConfig

    from aomi_runtime.actors.node import lean_ray_env
    from aomi_runtime.serve_app.app import MAX_ONGOING_REQUESTS
    from aomi_runtime.serve_app.launch import DIRECT_INGRESS_ENV, direct_urls

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    lean_ray_env(os.environ)
    if direct_ingress:
        os.environ[DIRECT_INGRESS_ENV] = "1"  # before Ray starts: Serve's processes inherit it

    @serve.deployment(
        ray_actor_options={"num_cpus": 0}, max_ongoing_requests=MAX_ONGOING_REQUESTS, num_replicas=replicas
    )
    @serve.ingress(app)
    class Floor:
        pass

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Floor.bind(), name="floor", route_prefix="/", logging_config=LoggingConfig(enable_access_log=False))
        urls = direct_urls("floor", "127.0.0.1") if direct_ingress else (f"http://127.0.0.1:{port}",)
        print(f"floor serving on {', '.join(urls)} (Ctrl-C stops it)", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["fastapi", "serve"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--direct-ingress", action="store_true", help="serve: each replica answers on its own port")
    parser.add_argument("--replicas", type=int, default=1, help="serve: ingress replicas")
    args = parser.parse_args()
    if args.kind == "fastapi":
        serve_fastapi(args.port)
    else:
        serve_on_ray(args.port, args.direct_ingress, args.replicas)
