"""The lean Ray settings reach the session actors' processes."""

from __future__ import annotations

import os

import ray

from aomi_runtime.actors.node import LEAN_RAY_ENV


@ray.remote(num_cpus=0)
class _Probe:
    def environ(self) -> dict[str, str]:
        return {name: os.environ.get(name, "") for name in LEAN_RAY_ENV}


def test_actor_processes_inherit_the_lean_settings(ray_instance: object) -> None:
    probe = _Probe.remote()
    try:
        assert ray.get(probe.environ.remote()) == LEAN_RAY_ENV
    finally:
        ray.kill(probe)
