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
from ..backends.otlp import tracing_env
from .ingress import DIRECT_INGRESS_ENV, INGRESS_ENV, check_port_free, direct_urls, free_port, ray_env
from .settings import Settings

APP_NAME = "aomi"
RAY_ENV_SET = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", *INGRESS_ENV, *LEAN_RAY_ENV)  # by `launch`


@dataclass
class Launched(contextlib.AbstractContextManager["Launched"]):
    """A runtime this process started; `stop` ends Serve, the runtime's actors and, if it started it, Ray.

    `url` is where clients reach it: the settings' host and port, where the ingress replica itself answers (direct
    ingress on a Ray `launch` started) or Serve's proxy does; on a joined cluster with direct ingress, the first of
    the replicas' own addresses (`direct_urls`), Serve's proxy then answering on the settings' port."""

    settings: Settings
    owns_ray: bool
    stopped: bool = False
    direct_urls: tuple[str, ...] = ()
    proxy_port: int | None = None  # where Serve's proxy listens when not on the settings' port
    # The environment as it was before `launch` set Ray's variables for the Ray it started: put back on `stop`,
    # so that a later launch in this process (a notebook's next `Client.local`) starts with its own settings.
    saved_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.settings.host}:{self.proxy_port or self.settings.port}"

    @property
    def url(self) -> str:
        if self.direct_urls and self.proxy_port is None:
            return self.direct_urls[0]
        return f"http://{self.settings.host}:{self.settings.port}"

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
    cluster at `address`; an instance this process already joined is used as it is.

    On a Ray it starts, with `settings.ingress` direct (the default), the ingress replica itself answers on that
    port, Serve's proxy on another; on a joined Ray, Serve's proxy takes the port and, where the cluster runs
    direct ingress, its replicas answer on ports of their own (`Launched.direct_urls`)."""
    import ray
    from ray import serve

    owns_ray = not ray.is_initialized()
    if not owns_ray and ((running := serve.status()).applications or running.proxies):
        # Starting here would take over (and, on stop, tear down) a Serve instance someone else runs.
        raise DeploymentError(
            "Serve already runs in the Ray instance this process joined: connect to the runtime it serves with "
            "Client(url), or reach its actors with Client.in_cluster(), instead of starting another."
        )
    if settings.port == 0:
        settings = settings.model_copy(update={"port": free_port(settings.host)})
    starts_ray = owns_ray and address is None
    if starts_ray:  # a cluster's Serve listens on its head node, which may be another machine
        check_port_free(settings.host, settings.port)
    # The ingress replica takes the port; the proxy, which still runs, another.
    proxy_port = free_port(settings.host) if starts_ray and settings.ingress == "direct" else None
    saved_env: dict[str, str | None] = {}
    if owns_ray:
        saved_env = {name: os.environ.get(name) for name in RAY_ENV_SET}
        if starts_ray:
            # Ray 2.60 turns token auth on for clusters started after a local init; a local run needs none.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            # Read by Serve's controller and replicas, which inherit them: set whatever the environment said.
            os.environ.update(ray_env(settings.ingress, settings.port))
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if settings.lean_ray:
            lean_ray_env(os.environ)
        # A local Ray's processes inherit this environment, OTEL_* included; a cluster's have their own, so the
        # OpenTelemetry variables go with the job (Serve's replicas, and the actors they start, inherit its env).
        traced = tracing_env() if address is not None else {}
        ray.init(
            address=address or "local",
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": traced} if traced else None,
        )
    launched = Launched(settings, owns_ray, saved_env=saved_env, proxy_port=proxy_port)
    try:
        serve.start(http_options={"host": settings.host, "port": proxy_port or settings.port})
        deploy(settings)
        if settings.ingress == "direct":
            launched.direct_urls = direct_urls(APP_NAME, settings.host)
            if not launched.direct_urls:
                raise DeploymentError(
                    f"Direct ingress is off in the Ray instance this process joined: start its nodes with "
                    f"{DIRECT_INGRESS_ENV}=1, or serve through Serve's proxy (--ingress proxy, AOMI_INGRESS=proxy)."
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
