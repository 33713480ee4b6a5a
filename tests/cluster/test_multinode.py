"""The runtime on several nodes (simulated on this machine): sessions spread over the nodes' session slots,
Ray's autoscaler adds nodes for sessions beyond them and removes the idle ones, and a node lost with live
sessions loses no stored message: they come back on another node at their next request, through deploy/serve.yaml
deployed as an operator would. Run in a child process: see `conftest.py`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import ray
from ray import serve
from ray.serve._private import api as serve_api
from ray.serve.schema import ServeDeploySchema

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.actors.directory import WORKER_PREFIX, named_actors
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec
from tests.cluster.conftest import SESSION_RESOURCE, in_child
from tests.conftest import free_port
from tests.deploy.files import SERVE_YAML, load, session_placement
from tests.helpers import eventually

pytestmark = in_child


def node_of(actor: Any) -> str:
    """The id of the node an actor runs on, from Ray's own actor table."""
    return str(ray._private.state.actors(actor._actor_id.hex())["Address"]["NodeID"])


def alive_nodes() -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n["Alive"]]


async def placed(namespace: str, session_ids: list[str]) -> dict[str, str]:
    """Which node holds each live session."""
    workers = await asyncio.to_thread(named_actors, namespace, WORKER_PREFIX)
    held = await asyncio.gather(*(w.held.remote() for w in workers))
    nodes = {s: node_of(w) for w, hosted in zip(workers, held, strict=True) for s in hosted if s in session_ids}
    assert sorted(nodes) == sorted(session_ids), f"not every session is live exactly once: {nodes}"
    return nodes


# --- the autoscaler ---------------------------------------------------------------------------------------


async def test_sessions_beyond_the_heads_slots_bring_up_worker_nodes_which_go_when_idle(
    autoscaling_cluster: Any, database_url: str
) -> None:
    namespace = f"aomi-c{uuid.uuid4().hex[:8]}"
    runtime = Runtime(
        [AppSpec(name="default")], database_url, namespace, placement=SessionPlacement({SESSION_RESOURCE: 1}, 120)
    )
    assert len(alive_nodes()) == 1
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    # Three live sessions and two warm actors need five slots; the head has one: they wait for nodes, bounded.
    replies = await asyncio.gather(
        *(runtime.chat(s, "hello", app=runtime.app("default"), user_state=None, public_key=None) for s in sessions)
    )
    assert [json.loads(r)["messages"][0]["content"] for r in replies] == ["hello"] * 3
    nodes = await placed(app_namespace(namespace, "default"), sessions)
    assert len(alive_nodes()) >= 3, "one head slot and two per worker: five actors need at least two workers"
    assert len(set(nodes.values())) >= 2, nodes
    for node in alive_nodes():
        assert node["Resources"].get(SESSION_RESOURCE, 0) >= 1, "a node without slots was added"

    # Once their sessions are gone (the runtime stopped: no session and no warm actor left), idle workers go.
    await runtime.stop()

    async def only_the_head() -> bool:
        return len(alive_nodes()) == 1

    await eventually(only_the_head, timeout=60, interval=0.5)


# --- deploy/serve.yaml, and a node lost --------------------------------------------------------------------


@pytest.fixture
async def deployed(cluster: Any, database_url: str) -> AsyncIterator[tuple[str, str]]:
    """deploy/serve.yaml deployed as `serve deploy` would, on the head alone (before any worker node joins, so the
    ingress, directory and store are there); its settings from the environment it gives the application."""
    config = load(SERVE_YAML)
    config["http_options"]["port"] = free_port()
    namespace = f"aomi-c{uuid.uuid4().hex[:8]}"
    (app,) = config["applications"]
    app["runtime_env"]["env_vars"].update(AOMI_DATABASE_URL=database_url, AOMI_NAMESPACE=namespace)
    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location
    )  # as `serve run deploy/serve.yaml` does
    client.deploy_apps(schema)

    async def running() -> bool:
        return bool(serve.status().applications[app["name"]].status == "RUNNING")

    await eventually(running, timeout=120, interval=0.5)
    try:
        yield f"http://127.0.0.1:{config['http_options']['port']}", app_namespace(namespace, "default")
    finally:
        serve.shutdown()


async def test_sessions_spread_over_the_nodes_and_a_lost_node_loses_no_stored_message(
    cluster: Any, deployed: tuple[str, str]
) -> None:
    url, namespace = deployed
    slots = {name: 4 * amount for name, amount in session_placement().resources.items()}
    workers = {cluster.add_node(num_cpus=1, resources=slots).node_id: None for _ in range(3)}
    head = cluster.head_node.node_id
    sessions = [str(uuid.uuid4()) for _ in range(5)]
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def state(s: str) -> dict[str, Any]:
            response = await client.get("/api/state", headers={"X-Session-Id": s})
            assert response.status_code == 200, response.text
            return dict(response.json())

        async def idle(s: str) -> dict[str, Any]:
            async def done() -> dict[str, Any] | None:
                snapshot = await state(s)
                return None if snapshot["is_processing"] else snapshot

            return await eventually(done, timeout=60)

        for s in sessions:
            sent = await client.post("/api/chat", params={"message": f"hi from {s[:8]}"}, headers={"X-Session-Id": s})
            assert sent.status_code == 200, sent.text
        before = {s: await idle(s) for s in sessions}
        assert all(len(b["messages"]) == 2 for b in before.values())

        nodes = await placed(namespace, sessions)
        assert head not in nodes.values(), "a session landed on the head, which has no session slots"
        assert len(set(nodes.values())) >= 2, f"five sessions, four slots a node, yet {nodes}"

        # The node with the most live sessions goes, as a node the autoscaler removes or the cloud reclaims.
        lost, count = Counter(nodes.values()).most_common(1)[0]
        (node,) = [n for n in cluster.worker_nodes if n.node_id == lost]
        cluster.remove_node(node)
        assert lost in workers and count >= 1

        # Every session answers its next request, from another node, with every stored message.
        after = {s: await state(s) for s in sessions}
        assert after == before
        again = await placed(namespace, sessions)
        assert lost not in again.values() and head not in again.values(), again

        moved = next(s for s, n in nodes.items() if n == lost)
        sent = await client.post("/api/chat", params={"message": "still here?"}, headers={"X-Session-Id": moved})
        assert sent.status_code == 200, sent.text
        final = await idle(moved)
        assert final["messages"][:2] == before[moved]["messages"]
        assert final["messages"][2]["content"] == "still here?"
