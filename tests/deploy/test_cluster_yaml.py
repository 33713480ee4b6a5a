"""cluster.yaml as `ray up` reads it: Ray's own schema and defaults, and what it must do for the runtime."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.deploy.files import CLUSTER_YAML, IMPORT_PATH, ROOT, SERVE_YAML, actor_ask, load, session_placement


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load(CLUSTER_YAML)


def commands(config: dict[str, Any], key: str) -> list[str]:
    return [" ".join(c.split()) for c in config[key]]


def local_path(config: dict[str, Any], remote: str) -> Path:
    """The file on the operator's machine that a path on the nodes comes from, through file_mounts."""
    for mounted, source in config["file_mounts"].items():
        if remote == mounted or remote.startswith(mounted.rstrip("/") + "/"):
            return (ROOT / source / remote[len(mounted) :].lstrip("/")).resolve()
    raise AssertionError(f"{remote} is not under any file mount: {config['file_mounts']}")


def test_the_file_follows_rays_schema_as_written(config: dict[str, Any]) -> None:
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # no unknown or misspelt field, before any default fills it in


def test_ray_up_accepts_it_with_its_defaults_filled_in(config: dict[str, Any]) -> None:
    prepared = prepare_config(config)  # what `ray up` does before it asks the cloud for anything
    validate_config(prepared)
    assert prepared["available_node_types"]["ray.head.default"]["max_workers"] == 0


def test_every_node_runs_the_ray_version_the_runtime_is_built_for(config: dict[str, Any]) -> None:
    image = config["docker"]["image"]
    assert f":{ray.__version__}-py311" in image, f"{image} is not Ray {ray.__version__} on Python 3.11"
    assert re.search(r"ray\[serve\]==" + re.escape(ray.__version__), (ROOT / "pyproject.toml").read_text())


def test_every_node_installs_the_runtime_from_the_mounted_checkout(config: dict[str, Any]) -> None:
    (install,) = [c for c in commands(config, "setup_commands") if c.startswith("pip install")]
    checkout = local_path(config, shlex.split(install)[-1])
    assert checkout == ROOT and 'name = "aomi-runtime"' in (checkout / "pyproject.toml").read_text()


def test_the_head_starts_ray_with_the_autoscaler_then_deploys_the_runtime(config: dict[str, Any]) -> None:
    head = commands(config, "head_start_ray_commands")
    (start,) = [i for i, c in enumerate(head) if "ray start --head" in c]
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head[start]
    (deploy,) = [i for i, c in enumerate(head) if "serve deploy" in c]
    assert deploy > start
    deployed = re.search(r"serve deploy ([^\s;']+)", head[deploy])
    assert deployed is not None
    serve_yaml = local_path(config, deployed[1])
    assert serve_yaml == SERVE_YAML
    (app,) = load(serve_yaml)["applications"]
    assert app["import_path"] == IMPORT_PATH


def test_every_ray_start_and_client_uses_token_auth_with_a_mounted_token(config: dict[str, Any]) -> None:
    starts = commands(config, "head_start_ray_commands") + commands(config, "worker_start_ray_commands")
    using_ray = [c for c in starts if c != "ray stop"]
    assert using_ray
    for command in using_ray:
        assert "RAY_AUTH_MODE=token" in command, command
        token = re.search(r"RAY_AUTH_TOKEN_PATH=(\S+)", command)
        assert token is not None, command
        assert token[1].startswith("$HOME/aomi/") and "~/aomi" in config["file_mounts"]


def test_the_database_url_comes_from_the_operator_never_from_the_file(config: dict[str, Any]) -> None:
    text = json.dumps([config, load(SERVE_YAML)])  # what the files set, without their comments
    assert not re.search(r"AOMI_DATABASE_URL\s*[=:]\s*['\"]?\w+://", text)
    assert not re.search(r"postgresql://\w+:[^@\s]+@", text)  # no password
    (start,) = [c for c in commands(config, "head_start_ray_commands") if "ray start --head" in c]
    assert start.index(". ~/aomi/env") < start.index("${AOMI_DATABASE_URL:?") < start.index("ray start")


def worker_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    types = config["available_node_types"]
    return {name: t for name, t in types.items() if name != config["head_node_type"]}


def test_worker_nodes_declare_slots_for_whole_packed_actors(config: dict[str, Any]) -> None:
    placement = session_placement()
    assert placement.resources, "deploy/serve.yaml sets no session resource: sessions would all pack on one node"
    asked = actor_ask(placement)  # an actor reserves a slot for each session it can host, all at once
    workers = worker_types(config)
    assert workers
    for name, node_type in workers.items():
        for resource, amount in asked.items():
            slots = node_type["resources"].get(resource, 0)
            # Slots beyond a whole actor's ask would never be taken: a multiple of it, and room for several.
            assert slots % amount == 0, f"{name} declares {slots} of {resource}; a session actor reserves {amount}"
            assert slots >= 2 * amount, f"{name} declares {slots} of {resource}: room for fewer than two actors"
    assert sum(t.get("min_workers", 0) for t in workers.values()) >= 1, "a first session would wait for a node to boot"
    assert config["idle_timeout_minutes"] > 0
    assert config["max_workers"] >= max(t["max_workers"] for t in workers.values())


# The node types cluster.yaml may use, and their memory (GiB). A new type is added here with its size.
INSTANCE_MEMORY_GIB = {"m5.xlarge": 16, "m5.2xlarge": 32, "m5.4xlarge": 64}
ACTOR_MB = 74  # a packed session actor: a Ray worker process with the runtime imported (bench/README.md)
SESSION_MB = 1  # a live session: a few hundred KB of its own, and its messages


def test_worker_slots_fit_in_half_of_a_nodes_memory(config: dict[str, Any]) -> None:
    # The rest is for Ray's object store and processes, and for turns. Slots are live sessions: sized by memory,
    # they may be thousands packed (CPU is not the bound: an idle actor costs the same whatever it hosts).
    placement = session_placement()
    for name, node_type in worker_types(config).items():
        instance = node_type["node_config"]["InstanceType"]
        assert instance in INSTANCE_MEMORY_GIB, f"{name} runs on {instance}: add its memory to INSTANCE_MEMORY_GIB"
        for resource, amount in placement.resources.items():
            sessions = node_type["resources"][resource] // amount
            actors = sessions // placement.sessions_per_actor
            needed_mb = actors * ACTOR_MB + sessions * SESSION_MB
            node_mb = INSTANCE_MEMORY_GIB[instance] * 1024
            assert needed_mb <= node_mb / 2, f"{name}: {sessions} sessions need ~{needed_mb} MB of {node_mb}"
            assert needed_mb >= node_mb / 4, f"{name}: {sessions} sessions leave most of its memory unused"
