"""Simulated multi-node Ray clusters on this machine, for the tests of `test_multinode.py`.

Those tests run in a child pytest process that `test_in_child.py` starts: a driver connects to one Ray cluster
only, and the rest of the suite shares one single-node instance. The parent names a temp dir under /tmp (so
CI's leak check sees any process left behind) in `CHILD_ENV`; without it, the multi-node tests skip.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.helpers import processes_using
from tests.postgres import postgres_database

CHILD_ENV = "AOMI_CLUSTER_TEST_TMP"
SESSION_RESOURCE = "aomi_session"
# The autoscaler's cluster, packed: an actor hosts PACKED sessions and reserves a slot for each, so the head holds
# one actor and a worker node two (slots are whole actors' asks, as in cluster.yaml).
PACKED = 4
HEAD_SLOTS = PACKED
WORKER_SLOTS = 2 * PACKED

in_child = pytest.mark.skipif(
    CHILD_ENV not in os.environ, reason="multi-node: runs in a child process, started by tests/cluster/test_in_child.py"
)


@pytest.fixture(scope="session")
def ray_root() -> str:
    root = os.environ[CHILD_ENV]
    # Ray writes the address of the cluster it starts under $RAY_TMPDIR/ray: keep it here, not in /tmp/ray.
    os.environ["RAY_TMPDIR"] = root
    Path(root, "ray").mkdir(exist_ok=True)
    return root


def _stop(cluster: Any) -> None:
    import ray

    session_dir = cluster.head_node.get_session_dir_path()
    ray.shutdown(wait_for_processes=True)
    cluster.shutdown()
    # Worker nodes the autoscaler started belong to its process, not to `cluster`: stop what is left of them.
    for line in processes_using(session_dir):
        os.kill(int(line.split()[0]), signal.SIGTERM)


@pytest.fixture
def cluster(ray_root: str) -> Iterator[Any]:
    """A head node with no session slots; the test adds worker nodes with `cluster.add_node`."""
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "temp_dir": ray_root, "include_dashboard": False}
    made = Cluster(initialize_head=True, head_node_args=head)
    made.connect()
    try:
        yield made
    finally:
        _stop(made)


NO_COMMANDS = (
    "cluster_synced_files",
    "rsync_exclude",
    "rsync_filter",
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def fake_autoscaler_config(gcs_address: str, head_slots: int, worker_slots: int, max_workers: int) -> dict[str, Any]:
    """What `ray.cluster_utils.AutoscalingCluster` would write (its template is missing from the wheel): Ray's
    fake multi-node provider, which starts each node the autoscaler asks for as processes on this machine."""
    return {
        "cluster_name": "aomi-fake",
        "max_workers": max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.05,  # 3 s
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ray"},
        "available_node_types": {
            "ray.head.default": {
                "resources": {"CPU": 1, SESSION_RESOURCE: head_slots},
                "node_config": {},
                "max_workers": 0,
            },
            "session.worker": {
                "resources": {"CPU": 1, SESSION_RESOURCE: worker_slots},
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
        **{key: [] for key in NO_COMMANDS},
    }


@pytest.fixture
def autoscaling_cluster(ray_root: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A head node with `HEAD_SLOTS` session slots, and Ray's autoscaler adding worker nodes of `WORKER_SLOTS` (two
    at most)."""
    import ray
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID
    from ray.cluster_utils import Cluster

    # Read by the autoscaler's process, which the head node starts from this one.
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")
    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    port = free_port()
    ip = ray.util.get_node_ip_address()
    config = Path(ray_root, f"autoscaler-{port}.json")
    config.write_text(json.dumps(fake_autoscaler_config(f"{ip}:{port}", HEAD_SLOTS, WORKER_SLOTS, max_workers=2)))
    head = {
        "num_cpus": 1,
        "resources": {SESSION_RESOURCE: HEAD_SLOTS},
        "temp_dir": ray_root,
        "include_dashboard": False,
        # The id the fake provider gives its head, as `ray start --head` sets it under RAY_FAKE_CLUSTER: under any
        # other, the autoscaler drops the head's load as stale, counts its slots as free, and may launch no node
        # for demand it thinks the head holds.
        "env_vars": {"RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID},
    }
    made = Cluster(
        initialize_head=True,
        head_node_args={**head, "node_ip_address": ip, "gcs_server_port": port, "autoscaling_config": str(config)},
    )
    made.connect()
    try:
        yield made
    finally:
        _stop(made)


@pytest.fixture
def database_url(ray_root: str, tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, as a cluster would use. Without a server: a SQLite file (the nodes share this
    machine), and a note of why in `ray_root` that the parent run reports; or, under `AOMI_REQUIRE_POSTGRES=1`, a
    failure (`postgres_database` fails then, rather than skip)."""
    try:
        with postgres_database() as url:
            yield url
            return
    except pytest.skip.Exception as skipped:
        reason = skipped.msg
    with Path(ray_root, SQLITE_NOTE).open("a") as note:
        note.write(f"{reason}\n")
    yield f"sqlite:///{tmp_path / 'cluster.db'}"


SQLITE_NOTE = "ran-on-sqlite.txt"  # in the child's temp dir: why the multi-node tests ran on SQLite
ran_on_sqlite: list[str] = []  # the notes the parent found, for its summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say so, in the run's summary, when the multi-node tests ran on SQLite instead of PostgreSQL."""
    if ran_on_sqlite:
        terminalreporter.section("multi-node tests on SQLite", yellow=True)
        for reason in dict.fromkeys(ran_on_sqlite):
            terminalreporter.line(f"the multi-node tests ran on SQLite, not PostgreSQL: {reason}")
