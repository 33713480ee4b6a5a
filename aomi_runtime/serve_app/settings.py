"""The runtime's settings: read once, from arguments and `AOMI_*` environment variables, by the CLI or app builder."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..actors.app_actors import DEFAULT_NAMESPACE
from ..actors.placement import DEFAULT_PLACEMENT_SECONDS, SessionPlacement
from ..actors.runtime import Runtime
from ..actors.snapshot_copies import MAX_BYTES
from ..agent.apps import DEFAULT_APP_SPEC, AppSpec
from ..agent.errors import InvalidInput
from ..backends.history import MEMORY_URL, open_history
from ..backends.secrets import parse_key
from .config import load_apps
from .ingress import DEFAULT_INGRESS, Ingress

DEFAULT_DATABASE_URL = "sqlite:///aomi.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_KEEPALIVE_SECONDS = 10.0
DEFAULT_KEY_CACHE_SECONDS = 30.0  # a revoked key stops working within this time
DEFAULT_MAX_STREAMS_PER_SESSION = 16
DEFAULT_STREAM_MAX_BYTES = 4 << 20  # live events one stream carries before it ends and the client resumes


class Settings(BaseSettings):
    """Everything the runtime is started with. Environment: `AOMI_DATABASE_URL`, `AOMI_PORT`, ..."""

    # Errors name the setting and what is wrong, never the value sent: it may be a key or a database password.
    model_config = SettingsConfigDict(env_prefix="AOMI_", extra="forbid", hide_input_in_errors=True)

    database_url: str = DEFAULT_DATABASE_URL
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    namespace: str = DEFAULT_NAMESPACE
    keepalive_seconds: float = Field(DEFAULT_KEEPALIVE_SECONDS, gt=0, le=15)
    key_cache_seconds: float = Field(DEFAULT_KEY_CACHE_SECONDS, ge=0, le=300)
    # Browsers may call the API from these origins (docs/api.md: any). A JSON list in AOMI_CORS_ORIGINS.
    cors_origins: tuple[str, ...] = ("*",)
    max_streams_per_session: int = Field(DEFAULT_MAX_STREAMS_PER_SESSION, ge=1)
    stream_max_bytes: int = Field(DEFAULT_STREAM_MAX_BYTES, ge=4096)
    config: Path | None = None
    apps: tuple[AppSpec, ...] = (DEFAULT_APP_SPEC,)
    model_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Seals clients' secrets (POST /api/secrets, provider keys) in the database: 32 random bytes, URL-safe base64.
    # Unset, each App's store holds them in memory only, lost when it restarts (SECURITY.md).
    secrets_key: SecretStr | None = None
    # On an autoscaling cluster: the custom resource each session actor asks for, as JSON in the environment
    # (`AOMI_SESSION_RESOURCES='{"aomi_session": 1}'`), which nodes declare as their session slots. Empty: no ask.
    session_resources: dict[str, float] = Field(default_factory=dict)
    session_placement_seconds: float = Field(DEFAULT_PLACEMENT_SECONDS, gt=0)
    # Live sessions one session actor (a Ray worker process) hosts, for every App whose limits do not say: 1 is a
    # process per session, as the runtime was specified; packed, a node holds thousands (docs/design.md).
    sessions_per_actor: int = Field(1, ge=1)
    # How HTTP reaches the ingress (serve_app/ingress.py): "direct", the ingress replica answers on `port` itself
    # (Serve's direct ingress, experimental in Ray 2.60), a request costing about a third of the CPU it costs
    # through Serve's proxy (bench/README.md); "proxy", through Serve's HTTP proxy. Read by Serve where Ray starts:
    # `launch` sets it for a Ray it starts; a cluster's nodes set RAY_SERVE_ENABLE_DIRECT_INGRESS=1 (docs/cluster.md).
    ingress: Ingress = DEFAULT_INGRESS
    # Serve's access log, a line per request in the replica's log file: about half a millisecond of CPU a request.
    # Off where the runtime deploys itself (`launch`, the CLI); `GET /metrics` counts requests by route, status
    # and latency. Under `serve run` / `serve deploy` the operator's logging config decides.
    access_log: bool = False
    # Each ingress replica keeps copies of the snapshots of sessions at rest, up to this many bytes in all, and
    # answers GET /api/state from them with no hop to the session's actor (docs/design.md); 0 keeps none.
    snapshot_copy_bytes: int = Field(MAX_BYTES, ge=0)
    # A Ray that `launch` starts itself runs without what idle session actors pay for and the runtime never uses
    # (`actors.node.LEAN_RAY_ENV`); false keeps Ray's defaults. A joined cluster keeps its own (see cluster.yaml).
    lean_ray: bool = True
    # Each App's store upgrades the database's schema to this version's as it starts (backends/migrations/, under a
    # lock). Off: the operator runs `aomi-runtime db upgrade`, and a database behind is refused with a StorageError
    # that says so.
    migrate_on_start: bool = True
    # Upgrades (docs/lifecycle.md#upgrades): each App's version is a digest of its spec and the package's version,
    # plus this label, which names what the spec cannot see (a new release of a tool's module): change it to roll
    # new code out under an unchanged config.
    version: str | None = None
    # When the deploy was built (set by `build_application`; 0: not a deploy): orders versions, so that a replica of
    # an older deploy never takes an App back to its version.
    deployed_at: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _read_apps_and_their_keys(self) -> Settings:
        # The configuration file and the providers' keys are read here, once, where the runtime starts; the
        # keys then travel to the session actors with the settings, so worker nodes need no environment.
        if self.config is not None:
            self.apps = load_apps(self.config, os.environ)
        for name in {m.api_key_env for app in self.apps for m in app.models if m.api_key_env}:
            if name not in self.model_keys and os.environ.get(name):
                self.model_keys[name] = SecretStr(os.environ[name])
        return self

    @field_validator("database_url")
    @classmethod
    def _absolute_sqlite_path(cls, url: str) -> str:
        # Actors may run in another working directory: a relative SQLite path is made absolute here, once.
        for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
            if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
                return prefix + str(Path(url[len(prefix) :]).resolve())
        return url

    @field_validator("database_url")
    @classmethod
    def _a_history_backend(cls, url: str) -> str:
        # A custom backend (`package.module:factory`) is made once here, and dropped, to be refused where the runtime
        # starts: in the App's store actor, which makes its own, it would fail every request instead.
        if url != MEMORY_URL and "://" not in url:
            try:
                open_history(url)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return url

    @field_validator("secrets_key")
    @classmethod
    def _a_secrets_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None:
            parse_key(key)  # refused where the runtime starts, not in each store
        return key

    @field_validator("session_resources")
    @classmethod
    def _custom_resources(cls, resources: dict[str, float]) -> dict[str, float]:
        SessionPlacement(resources)  # raises, naming the resource, if Ray would refuse it
        return resources

    @property
    def placement(self) -> SessionPlacement:
        return SessionPlacement(self.session_resources, self.session_placement_seconds, self.sessions_per_actor)

    def runtime(self) -> Runtime:
        """The runtime these settings describe: its Apps' actors found, or started if none run yet."""
        return Runtime(
            self.apps,
            self.database_url,
            self.namespace,
            self.model_keys,
            self.placement,
            self.secrets_key,
            self.snapshot_copy_bytes,
            migrate=self.migrate_on_start,
            deployed_at=self.deployed_at,
            version_label=self.version,
        )
