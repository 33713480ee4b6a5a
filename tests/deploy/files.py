"""The deployment files at the repository's top, read as the tests need them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from aomi_runtime.actors.placement import SessionPlacement

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
SERVE_YAML = ROOT / "deploy" / "serve.yaml"
IMPORT_PATH = "aomi_runtime.serve_app.app:build"


def load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


def ray_start_env(node: str = "head") -> dict[str, str]:
    """The variables cluster.yaml's `node` ("head" or "worker") exports before `ray start` (Ray's processes
    inherit them)."""
    (start,) = [c for c in load(CLUSTER_YAML)[f"{node}_start_ray_commands"] if "ray start" in c]
    (exported,) = [part for part in start.split("&&") if part.strip().startswith("export ")]
    return dict(pair.split("=", 1) for pair in exported.split()[1:])


def serve_env() -> dict[str, str]:
    """The environment deploy/serve.yaml gives the application (where the builder reads its settings)."""
    (app,) = load(SERVE_YAML)["applications"]
    return dict(app["runtime_env"]["env_vars"])


def session_placement() -> SessionPlacement:
    """What each session asks for, and how many sessions an actor hosts, when deployed with deploy/serve.yaml."""
    env = serve_env()
    return SessionPlacement(
        json.loads(env["AOMI_SESSION_RESOURCES"]), sessions_per_actor=int(env.get("AOMI_SESSIONS_PER_ACTOR", 1))
    )


def actor_ask(placement: SessionPlacement) -> dict[str, float]:
    """What one session actor reserves: its sessions' resources for each of its places."""
    return {name: amount * placement.sessions_per_actor for name, amount in placement.resources.items()}
