"""Named actors of a namespace: how the runtime finds an App's actors again, whoever started them."""

from __future__ import annotations

from typing import Any

import ray


def named_actors(namespace: str, prefix: str = "") -> list[Any]:
    """Handles of the live named actors of a namespace whose names start with `prefix` (a blocking call)."""
    return [handle for _, handle in named_actor_names(namespace, prefix)]


def named_actor_names(namespace: str, prefix: str = "") -> list[tuple[str, Any]]:
    """`named_actors` with their names."""
    return [
        (a["name"], ray.get_actor(a["name"], namespace=namespace))
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].startswith(prefix)
    ]
