"""An App's actors: the directory of its sessions and the store of its history, started in the App's own namespace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from ..agent.apps import AppSpec
from .directory import SessionDirectory
from .placement import SessionPlacement
from .store import HistoryStore
from .versions import Stamp, app_version

DEFAULT_NAMESPACE = "aomi"


def app_namespace(prefix: str, app: str) -> str:
    return f"{prefix}-{app}"


@dataclass(frozen=True)
class AppActors:
    """One App's actors, in its own namespace: the directory of its sessions and the store of its history."""

    spec: AppSpec
    namespace: str
    directory: Any
    store: Any

    @classmethod
    def start(
        cls,
        spec: AppSpec,
        database_url: str,
        namespace: str,
        model_keys: Mapping[str, SecretStr],
        placement: SessionPlacement | None = None,
        secrets_key: SecretStr | None = None,
        migrate: bool = True,
        deployed_at: float = 0.0,
        version_label: str | None = None,
    ) -> AppActors:
        """Get the App's actors, creating them if this is the first caller. Detached: they outlive any replica.

        Only the provider keys this App's models name reach its actors; `placement` says where its session
        actors may run; `secrets_key` seals its clients' secrets in its database (without one, its store holds
        them in memory); `migrate` has its store upgrade the database's schema as it starts (off: refuse one
        behind). A deploy (`deployed_at`, when it was built) tells the App's directory its version, which
        takes over from an older one found running (actors/versions.py)."""
        own_keys = {env: model_keys[env] for m in spec.models if (env := m.api_key_env) and env in model_keys}
        options = {"namespace": namespace, "lifetime": "detached", "get_if_exists": True}
        store = HistoryStore.options(name="store", **options).remote(spec.name, database_url, secrets_key, migrate)  # type: ignore[attr-defined]  # mypy ignores a class decorator's result: @ray.remote made an ActorClass
        stamp = Stamp(deployed_at, app_version(spec, version_label, placement, own_keys))
        directory = SessionDirectory.options(name="directory", **options).remote(  # type: ignore[attr-defined]  # mypy ignores a class decorator's result: @ray.remote made an ActorClass
            spec, store, namespace, own_keys, placement=placement, stamp=stamp
        )
        if deployed_at:  # told, not awaited: Ray runs this caller's calls in order, so its lookups come after
            directory.deploy.remote(spec, own_keys, stamp, placement or SessionPlacement())
        return cls(spec=spec, namespace=namespace, directory=directory, store=store)
