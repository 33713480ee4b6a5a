"""Start the runtime from Python: Ray (a local instance, or a running cluster) and Serve, and stop it again.

The CLI's `serve` runs it until Ctrl-C; a notebook or a script holds it for as long as it needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..actors.node import LEAN_RAY_ENV, lean_ray_env
from ..agent.errors import DeploymentError
from .settings import Settings

APP_NAME = "aomi"


DIRECT_INGRESS_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"
REPLICA_PREFIX = "SERVE_REPLICA::"  # the names Serve gives its replicas' actors
WILDCARDS = ("0.0.0.0", "::", "")
RAY_ENV_SET = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", DIRECT_INGRESS_ENV, *LEAN_RAY_ENV)  # by `launch`


@dataclass
class Launched(contextlib.AbstractContextManager["Launched"]):
    """A runtime this process started; `stop` ends Serve, the runtime's actors and, if it started it, Ray.

    `url` is where clients reach it: Serve's proxy, or with direct ingress the ingress replica itself."""

    settings: Settings
    owns_ray: bool
    stopped: bool = False
    direct_urls: tuple[str, ...] = ()
    # The environment as it was before `launch` set Ray's variables for the Ray it started: put back on `stop`,
    # so that a later launch in this process (a notebook's next `Client.local`) starts with its own settings.
    saved_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def url(self) -> str:
        return self.direct_urls[0] if self.direct_urls else self.proxy_url

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        import ray
        from ray import serve

        try:
            serve.delete(APP_NAME)
            # In a thread of its own: the caller may be inside a running event loop (a notebook cell).
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, self.settings.runtime().stop()).result()
            serve.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves serve.shutdown unannotated
        finally:
            if self.owns_ray:
                ray.shutdown(wait_for_processes=True)  # each of its processes gone (and reaped) on return
                for name, value in self.saved_env.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def __exit__(self, *exc_info: object) -> None:  # `with` gives the instance itself (AbstractContextManager)
        self.stop()


def launch(settings: Settings, address: str | None = None) -> Launched:
    """Serve the runtime `settings` describe on `settings.host:port`, on a new local Ray instance, or on the
    cluster at `address`; an instance this process already joined is used as it is."""
    import ray
    from ray import serve

    owns_ray = not ray.is_initialized()
    if not owns_ray and ((running := serve.status()).applications or running.proxies):
        # Starting here would take over (and, on stop, tear down) a Serve instance someone else runs.
        raise DeploymentError(
            "Serve already runs in the Ray instance this process joined: connect to the runtime it serves with "
            "Client(url), or reach its actors with Client.in_cluster(), instead of starting another."
        )
    saved_env: dict[str, str | None] = {}
    if owns_ray:
        saved_env = {name: os.environ.get(name) for name in RAY_ENV_SET}
        if address is None:
            # Ray 2.60 turns token auth on for clusters started after a local init; a local run needs none.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if settings.lean_ray:
            lean_ray_env(os.environ)
        if settings.direct_ingress:
            os.environ[DIRECT_INGRESS_ENV] = "1"  # read by Serve's controller and replicas, which inherit it
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
    launched = Launched(settings, owns_ray, saved_env=saved_env)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        deploy(settings)
        if settings.direct_ingress:
            launched.direct_urls = direct_urls(APP_NAME, settings.host)
            if not launched.direct_urls:
                raise DeploymentError(
                    f"Direct ingress is off in the Ray instance this process joined: start its nodes with "
                    f"{DIRECT_INGRESS_ENV}=1, or leave AOMI_DIRECT_INGRESS unset to serve through Serve's proxy."
                )
    except BaseException:
        launched.stop()
        raise
    return launched


def deploy(settings: Settings, *, name: str = APP_NAME, route_prefix: str = "/") -> None:
    """Serve the runtime as the application `name` at `route_prefix` of the Serve instance this process reaches.

    Serve's access log follows `settings.access_log`, given as the application's logging config: one given to
    the deployment would override what an operator sets for the application (`serve run` / `serve deploy`)."""
    from ray import serve
    from ray.serve.schema import LoggingConfig

    from .app import build_application

    logging_config = LoggingConfig(enable_access_log=settings.access_log)
    serve.run(build_application(settings), name=name, route_prefix=route_prefix, logging_config=logging_config)


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
