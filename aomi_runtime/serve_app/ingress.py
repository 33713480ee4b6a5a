"""How HTTP reaches the ingress replica: on the user's port with no proxy between (Serve's direct ingress, the
default), or through Serve's HTTP proxy.

Through the proxy a request crosses two processes, the proxy and the replica, and a handler that awaits anything
pays the proxy's disconnect watcher: a cache hit costs about 2.6x the CPU it costs with the replica answering
itself (bench/README.md). Serve reads direct ingress from its processes' environment, so it is chosen before Ray
starts: for a Ray that `launch` starts, these variables put the one ingress replica's listening port range at
exactly the user's port, and move the proxy (which Serve still starts: with the proxy disabled no replica serves
HTTP either) to a free port of its own.
"""

from __future__ import annotations

import socket
from typing import Literal

from ..agent.errors import DeploymentError

Ingress = Literal["direct", "proxy"]
DEFAULT_INGRESS: Ingress = "direct"

DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
MIN_PORT_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"
MAX_PORT_ENV = "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"  # excluded from the range
# A direct-ingress replica that stops first waits this long for a load balancer to stop sending it requests
# (30 s by default, which `serve.shutdown` then waits out), and its port is kept from any new replica for
# HAProxy's hard-stop time plus 30 s (150 s). With no load balancer in front, neither has a purpose: stopping
# takes the replica's in-flight requests, and a replica restarted after a crash gets the port back at once.
DRAINING_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"
QUARANTINE_ENV = "RAY_SERVE_PORT_QUARANTINE_S"
INGRESS_ENV = (DIRECT_INGRESS_ENV, MIN_PORT_ENV, MAX_PORT_ENV, DRAINING_ENV, QUARANTINE_ENV)

REPLICA_PREFIX = "SERVE_REPLICA::"  # the names Serve gives its replicas' actors
WILDCARDS = ("0.0.0.0", "::", "")


def ray_env(ingress: Ingress, port: int, replicas: int = 1) -> dict[str, str]:
    """The environment a Ray started for the runtime needs for `ingress`: with direct ingress, ports from `port`
    for `replicas` ingress replicas (the first replica Serve starts takes `port`)."""
    if ingress == "proxy":
        return {DIRECT_INGRESS_ENV: "0"}
    return {
        DIRECT_INGRESS_ENV: "1",
        MIN_PORT_ENV: str(port),
        MAX_PORT_ENV: str(port + replicas),
        DRAINING_ENV: "0",
        QUARANTINE_ENV: "0",
    }


def check_port_free(host: str, port: int) -> None:
    """Raise DeploymentError, naming the address, if something listens on `host:port` already: Serve would
    otherwise retry the port (the proxy) or fail the replica's start over and over, and `launch` would hang."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: a port in TIME_WAIT is free
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DeploymentError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Stop what listens there, or choose another "
                "port (--port, AOMI_PORT)."
            ) from None


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now (for Serve's proxy, beside a replica on the user's port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def direct_urls(app: str, host: str) -> tuple[str, ...]:
    """The HTTP addresses of `app`'s ingress replicas where Serve's direct ingress is on, else none.

    Serve's own instance details name them (its target groups: what a load balancer is given); where direct
    ingress is off they name the proxies. A replica listens on `host` (Serve's HTTP host), or on every address
    of its node when that is a wildcard."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeInstanceDetails

    client = _get_global_client()
    # Ray types it Optional, yet it raises rather than return None unless asked not to.
    assert client is not None
    details = ServeInstanceDetails(**client.get_serve_details())
    return tuple(
        f"http://{target.ip if host in WILDCARDS else host}:{target.port}"
        for group in details.target_groups
        if group.app_name == app and group.protocol == "HTTP"
        for target in group.targets
        if target.name.startswith(REPLICA_PREFIX)
    )
