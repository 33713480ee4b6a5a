"""The runtime on several nodes (simulated on this machine), packed as on a cluster: each session actor hosts
several sessions and reserves a session slot for each, so the slots count sessions; Ray's autoscaler adds nodes
for sessions beyond them and removes the idle ones; and a node lost with an actor full of live sessions loses no
stored message: they come back on another node at their next request, through deploy/serve.yaml deployed as an
operator would. Run in a child process: see `conftest.py`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import pytest
import ray
from ray import serve
from ray.exceptions import RayActorError
from ray.serve._private import api as serve_api
from ray.serve.schema import ServeDeploySchema

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.actors.directory import WORKER_PREFIX, named_actors
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec
from tests.cluster.conftest import HEAD_SLOTS, PACKED, SESSION_RESOURCE, WORKER_SLOTS, in_child
from tests.conftest import free_port
from tests.deploy.files import SERVE_YAML, actor_ask, load, session_placement
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
    held = await asyncio.gather(*(w.held.remote() for w in workers), return_exceptions=True)
    for hosted in held:  # an actor killed (its node lost, or never placed) hosts nothing
        if isinstance(hosted, BaseException) and not isinstance(hosted, RayActorError):
            raise hosted
    nodes = {
        s: node_of(w)
        for w, hosted in zip(workers, held, strict=True)
        if isinstance(hosted, list)
        for s in hosted
        if s in session_ids
    }
    assert sorted(nodes) == sorted(session_ids), f"not every session is live exactly once: {nodes}"
    return nodes


def _slot_accounts(namespace: str, capacity: int) -> tuple[bool, dict[str, dict[str, float]]]:
    total = ray._private.state.total_resources_per_node()
    free = ray._private.state.available_resources_per_node()
    running: Counter[str] = Counter()
    for worker in named_actors(namespace, WORKER_PREFIX):
        info = ray._private.state.actors(worker._actor_id.hex())
        if info["State"] == "ALIVE":
            running[info["Address"]["NodeID"]] += 1
    accounts = {
        node: {
            "slots": slots.get(SESSION_RESOURCE, 0),
            "free": free.get(node, {}).get(SESSION_RESOURCE, 0),
            "actors": running[node],
        }
        for node, slots in total.items()
    }
    ok = all(a["free"] == a["slots"] - capacity * a["actors"] for a in accounts.values())
    return ok and set(running) <= set(accounts), accounts


async def slots_add_up(namespace: str, capacity: int) -> dict[str, int]:
    """Checks that every node's free session slots are its slots less `capacity` for each session actor running
    there, whatever number of sessions that actor hosts: an actor reserves its places. Returns the actors per node
    that have any. (Ray's view of free resources follows a moment behind: polled.)"""
    last: list[dict[str, dict[str, float]]] = []

    async def add_up() -> bool:
        ok, accounts = await asyncio.to_thread(_slot_accounts, namespace, capacity)
        last[:] = [accounts]
        return ok

    try:
        await eventually(add_up, timeout=30, interval=0.25)
    except AssertionError:
        raise AssertionError(f"an actor of {capacity} places does not reserve {capacity} slots: {last}") from None
    return {node: int(a["actors"]) for node, a in last[0].items() if a["actors"]}


async def bounded(calls: list[Callable[[], Awaitable[Any]]], at_once: int = 16) -> list[Any]:
    """Run the calls concurrently, `at_once` at a time at most (as many clients would)."""
    gate = asyncio.Semaphore(at_once)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


# --- the autoscaler ---------------------------------------------------------------------------------------


async def test_sessions_take_a_slot_each_and_beyond_the_heads_bring_up_a_worker_node_which_goes_when_idle(
    autoscaling_cluster: Any, database_url: str
) -> None:
    namespace = f"aomi-c{uuid.uuid4().hex[:8]}"
    placement = SessionPlacement({SESSION_RESOURCE: 1}, 120, sessions_per_actor=PACKED)
    runtime = Runtime([AppSpec(name="default")], database_url, namespace, placement=placement)
    ns = app_namespace(namespace, "default")
    head = autoscaling_cluster.head_node.node_id
    assert len(alive_nodes()) == 1

    async def chat(session_ids: list[str]) -> None:
        replies = await asyncio.gather(
            *(
                runtime.chat(s, "hello", app=runtime.app("default"), user_state=None, public_key=None)
                for s in session_ids
            )
        )
        assert [json.loads(r)["messages"][0]["content"] for r in replies] == ["hello"] * len(session_ids)

    # The head's slots hold as many sessions as it has slots, in one process that reserves them all.
    first = [str(uuid.uuid4()) for _ in range(HEAD_SLOTS)]
    await chat(first)
    assert set((await placed(ns, first)).values()) == {head}
    assert (await slots_add_up(ns, PACKED))[head] == HEAD_SLOTS // PACKED

    # Sessions beyond them wait for a node the autoscaler adds for the next actor's slots: one node, as two sessions
    # (and the warm places kept beside them) take one actor, not a process each.
    more = [str(uuid.uuid4()) for _ in range(PACKED // 2)]
    await chat(more)
    nodes = await placed(ns, first + more)
    (worker,) = {nodes[s] for s in more}
    assert worker != head
    assert await slots_add_up(ns, PACKED) == {head: 1, worker: 1}
    assert len(alive_nodes()) == 2, "a worker node holds two actors' slots, yet another was added"
    assert ray.cluster_resources()[SESSION_RESOURCE] == HEAD_SLOTS + WORKER_SLOTS

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


async def test_packed_sessions_spread_over_the_nodes_and_a_lost_node_loses_no_stored_message(
    cluster: Any, deployed: tuple[str, str]
) -> None:
    url, namespace = deployed
    placement = session_placement()  # deploy/serve.yaml's: packed
    capacity = placement.sessions_per_actor
    assert capacity > 1
    # Nodes of one actor's slots each: every actor, with all its sessions, on a node of its own.
    workers = {cluster.add_node(num_cpus=1, resources=actor_ask(placement)).node_id for _ in range(3)}
    head = cluster.head_node.node_id
    # More sessions than an actor's places: they take two actors, on two nodes.
    sessions = [str(uuid.uuid4()) for _ in range(capacity + 8)]
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

        async def say(s: str, message: str) -> dict[str, Any]:
            sent = await client.post("/api/chat", params={"message": message}, headers={"X-Session-Id": s})
            assert sent.status_code == 200, sent.text
            return await idle(s)

        said = await bounded([partial(say, s, f"hi from {s[:8]}") for s in sessions])
        before = dict(zip(sessions, said, strict=True))
        assert all(len(b["messages"]) == 2 for b in before.values())

        nodes = await placed(namespace, sessions)
        assert head not in nodes.values(), "a session landed on the head, which has no session slots"
        assert len(set(nodes.values())) == 2, (
            f"{len(sessions)} sessions, {capacity} an actor, yet {Counter(nodes.values())}"
        )
        assert await slots_add_up(namespace, capacity) == dict.fromkeys(set(nodes.values()), 1)

        # The node with the most live sessions goes, as a node the autoscaler removes or the cloud reclaims: its
        # actor, and every session it hosted, with it.
        lost, count = Counter(nodes.values()).most_common(1)[0]
        (node,) = [n for n in cluster.worker_nodes if n.node_id == lost]
        cluster.remove_node(node)
        assert lost in workers and count > capacity // 2

        # Every session answers its next request, from another node, with every stored message.
        answered = await bounded([partial(state, s) for s in sessions])
        assert dict(zip(sessions, answered, strict=True)) == before
        again = await placed(namespace, sessions)
        assert lost not in again.values() and head not in again.values(), Counter(again.values())
        assert await slots_add_up(namespace, capacity) == dict.fromkeys(workers - {lost}, 1)

        moved = next(s for s, n in nodes.items() if n == lost)
        final = await say(moved, "still here?")
        assert final["messages"][:2] == before[moved]["messages"]
        assert final["messages"][2]["content"] == "still here?"
