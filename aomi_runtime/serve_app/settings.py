"""The runtime's settings: read once, from arguments and `AOMI_*` environment variables, by the CLI or app builder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..actors.runtime import DEFAULT_NAMESPACE
from ..agent.apps import DEFAULT_APP_SPEC, AppSpec

DEFAULT_DATABASE_URL = "sqlite:///aomi.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_KEEPALIVE_SECONDS = 10.0


class Settings(BaseSettings):
    """Everything the runtime is started with. Environment: `AOMI_DATABASE_URL`, `AOMI_PORT`, ..."""

    model_config = SettingsConfigDict(env_prefix="AOMI_", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    namespace: str = DEFAULT_NAMESPACE
    keepalive_seconds: float = Field(DEFAULT_KEEPALIVE_SECONDS, gt=0, le=15)
    apps: tuple[AppSpec, ...] = (DEFAULT_APP_SPEC,)

    @field_validator("database_url")
    @classmethod
    def _absolute_sqlite_path(cls, url: str) -> str:
        # Actors may run in another working directory: a relative SQLite path is made absolute here, once.
        for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
            if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
                return prefix + str(Path(url[len(prefix) :]).resolve())
        return url
