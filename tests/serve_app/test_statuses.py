"""The failure statuses of docs/api.md, each reached through real HTTP against the real runtime, and the OpenAPI
description naming every status a route answers.

The faults are real ones: a database that refuses a session's writes (a SQLite trigger), a stored row the
runtime cannot read, an App full to its `limits.max_sessions`, a placement no node of the test's Ray instance
can satisfy, a session's actors killed with `ray.kill`. Those that would break the shared runtime's Apps are
served by a second front door (`front_door`): another Serve application in the shared Serve instance, over
the shared runtime's actors and database, with Apps of its own besides.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from aomi_runtime.actors.app_actors import app_namespace
from aomi_runtime.actors.directory import named_actors
from aomi_runtime.actors.placement import SessionPlacement
from aomi_runtime.actors.runtime import Runtime
from aomi_runtime.agent.apps import AppSpec, Limits
from aomi_runtime.serve_app.settings import Settings
from tests.conftest import TEST_NAMESPACE
from tests.helpers import holders
from tests.serve_app.conftest import h, k, sid
from tests.serve_app.test_routes import EMPTY

CAPPED, NOWHERE, GONE = "capped", "nowhere", "gone"
FAULTS = "faults"
DOCS = Path(__file__).parents[2] / "docs" / "api.md"


@contextlib.contextmanager
def front_door(settings: Settings, name: str, proxy_url: str) -> Iterator[str]:
    """Another ingress, served at `/<name>` of the shared Serve instance as a Serve application of its own, with
    `settings`: over the shared runtime's actors where its Apps are the shared runtime's (found by name), with
    actors of its own for Apps the shared runtime does not have. Yields its URL, through Serve's proxy."""
    from ray import serve

    from aomi_runtime.serve_app.launch import deploy

    try:  # deployed as the runtime deploys itself; deleted even if deploying failed half way
        deploy(settings, name=name, route_prefix=f"/{name}")
        yield f"{proxy_url}/{name}"
    finally:
        serve.delete(name)


@pytest.fixture(scope="module")
def faults_url(runtime_url: str, runtime_settings: Settings, proxy_url: str) -> Iterator[str]:
    """A front door with three Apps of its own: `capped` holds at most two sessions; `nowhere` asks each session
    actor for a resource no node of the test's Ray instance has, waiting one second; `gone` is for killing."""
    own = (
        AppSpec(name=CAPPED, limits=Limits(max_sessions=2)),
        AppSpec(name=NOWHERE),
        AppSpec(name=GONE),
    )
    settings = runtime_settings.model_copy(update={"apps": (*runtime_settings.apps, *own)})
    try:
        with front_door(settings, FAULTS, proxy_url) as faults:
            # A deploy after the front door's, as an operator's next one would be: `nowhere`'s directory then places
            # its session actors as this placement says. Asked once more so that the deploy has landed.
            nowhere = Runtime(
                own[1:2],
                runtime_settings.database_url,
                TEST_NAMESPACE,
                placement=SessionPlacement({"aomi_test_nowhere": 1}, timeout_seconds=1),
                deployed_at=time.time(),
            )
            ray.get(nowhere.apps[NOWHERE].directory.stats.remote())
            yield faults
    finally:  # its own Apps' actors only (found by name: none started again to be stopped); their sessions stay stored
        for spec in own:
            for actor in named_actors(app_namespace(TEST_NAMESPACE, spec.name)):
                ray.kill(actor, no_restart=True)


@pytest.fixture
async def faults(faults_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=faults_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def described(runtime_url: str) -> dict[str, Any]:
    """The runtime's OpenAPI description: path -> method -> operation."""
    paths: dict[str, Any] = httpx.get(f"{runtime_url}/openapi.json", timeout=30).json()["paths"]
    return paths


def assert_answer(described: dict[str, Any], r: httpx.Response, status: int, *words: str) -> None:
    """The answer has this status and exactly `{"error": ...}` with these words; its route's description names it."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    for word in words:
        assert word in body["error"], body
    path = re.sub(r"^/[a-z]+(?=/api/)", "", r.request.url.path)  # a front door's prefix off
    path = re.sub(r"^/api/sessions/[^/]+", "/api/sessions/{session_id}", path)
    responses = described[path][r.request.method.lower()]["responses"]
    assert str(status) in responses, f"{r.request.method} {path} answers {status}, which /openapi.json does not name"


# --- limits: 429 --------------------------------------------------------------------------------------------


async def test_an_app_full_to_its_max_sessions_refuses_a_new_session_on_every_route_that_makes_one(
    faults: httpx.AsyncClient, described: dict[str, Any]
) -> None:
    kept = [sid(), sid()]
    for s in kept:  # up to the limit: made
        made = await faults.post("/api/sessions", params={"app": CAPPED}, json={}, headers=h(s))
        assert made.status_code == 200, made.text
    new = sid()
    for r in (
        await faults.post("/api/chat", params={"message": "hi", "app": CAPPED}, headers=h(new)),
        await faults.post("/api/sessions", params={"app": CAPPED}, json={}, headers=h(new)),
        await faults.post("/api/control/model", params={"rig": "scripted", "app": CAPPED}, headers=h(new)),
    ):
        assert_answer(described, r, 429, "limit of 2 sessions", "limits.max_sessions")
    assert (await faults.get("/api/state", headers=h(new))).json() == EMPTY  # nothing made
    r = await faults.post("/api/chat", params={"message": "still here", "app": CAPPED}, headers=h(kept[0]))
    assert r.status_code == 200 and r.json()["messages"][0]["content"] == "still here"  # the App's own go on


# --- 503 ----------------------------------------------------------------------------------------------------


async def test_a_session_no_node_can_place_answers_503_and_nothing_is_stored(
    faults: httpx.AsyncClient, described: dict[str, Any]
) -> None:
    s = sid()
    for r in (
        await faults.post("/api/chat", params={"message": "hi", "app": NOWHERE}, headers=h(s)),
        await faults.post("/api/sessions", params={"app": NOWHERE}, json={}, headers=h(s)),
    ):
        assert_answer(described, r, 503, "No node had room", "try again")
    assert (await faults.get("/api/state", headers=h(s))).json() == EMPTY


async def test_a_session_whose_actors_are_gone_answers_503_after_one_retry(
    faults: httpx.AsyncClient, described: dict[str, Any]
) -> None:
    s = sid()
    r = await faults.post("/api/chat", params={"message": "hi", "app": GONE}, headers=h(s))
    assert r.status_code == 200
    namespace = app_namespace(TEST_NAMESPACE, GONE)

    def kill_session_actor() -> None:
        (actor,) = holders(namespace, s)
        ray.kill(actor, no_restart=True)

    kill_session_actor()  # one actor gone: the runtime finds the session again, once, and answers
    r = await faults.post("/api/interrupt", headers=h(s))
    assert r.status_code == 200 and r.json()["messages"][0]["content"] == "hi"
    kill_session_actor()  # gone again, and with it the directory that would find it again
    ray.kill(ray.get_actor("directory", namespace=namespace), no_restart=True)
    r = await faults.post("/api/interrupt", headers=h(s))
    assert_answer(described, r, 503, "process stopped", "stored state is safe")


def database(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=30)


@contextlib.contextmanager
def refusing_writes_of(settings: Settings, session_id: str) -> Iterator[None]:
    """The shared runtime's database refuses every write of one session's record, as a full or failing disk would."""
    with contextlib.closing(database(settings)) as db, db:
        db.execute(
            f"CREATE TRIGGER aomi_test_refuse BEFORE INSERT ON aomi_sessions WHEN NEW.session_id = '{session_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    try:
        yield
    finally:
        with contextlib.closing(database(settings)) as db, db:
            db.execute("DROP TRIGGER aomi_test_refuse")


async def test_a_database_that_refuses_the_write_answers_503_and_the_retry_is_stored_once(
    client: httpx.AsyncClient, runtime_settings: Settings, described: dict[str, Any]
) -> None:
    s = sid()
    params = {"message": "keep me", "request_id": "req-storage-1"}
    with refusing_writes_of(runtime_settings, s):
        for r in (
            await client.post("/api/chat", params=params, headers=h(s)),
            await client.post("/api/sessions", json={}, headers=h(s)),
        ):
            assert_answer(described, r, 503, "history database did not store", "IntegrityError")
    r = await client.post("/api/chat", params=params, headers=h(s))  # the same request again, once it can be stored
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["messages"] if m["sender"] == "user"] == ["keep me"]


async def test_a_stored_row_the_runtime_cannot_read_answers_a_logged_500(
    client: httpx.AsyncClient, runtime_settings: Settings, described: dict[str, Any]
) -> None:
    s = sid()
    assert (await client.post("/api/sessions", json={}, headers=h(s))).status_code == 200
    await runtime_settings.runtime().close_sessions()  # stored only: no live actor writes it over
    assert (await client.get(f"/api/sessions/{s}")).status_code == 200
    with contextlib.closing(database(runtime_settings)) as db, db:
        db.execute('UPDATE aomi_sessions SET data = \'{"written": "by something else"}\' WHERE session_id = ?', (s,))
    try:
        r = await client.get(f"/api/sessions/{s}")
        assert_answer(described, r, 500)
        assert r.json() == {"error": "Internal error; it was logged."}  # nothing of the cause: no stack trace
    finally:
        assert (await client.delete(f"/api/sessions/{s}")).status_code == 200


# --- the rest the routes table names ------------------------------------------------------------------------


async def test_posting_another_apps_session_answers_409(
    client: httpx.AsyncClient, keys: dict[str, str], described: dict[str, Any]
) -> None:
    s = sid()
    assert (await client.post("/api/sessions", json={}, headers=h(s))).status_code == 200
    r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers={**h(s), **k(keys["research"])})
    assert_answer(described, r, 409, "another App")
    assert (await client.get(f"/api/sessions/{s}")).status_code == 200


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
async def test_listing_sessions_with_a_limit_out_of_range_answers_422(
    client: httpx.AsyncClient, described: dict[str, Any], limit: str
) -> None:
    r = await client.get("/api/sessions", params={"public_key": "0xabc", "limit": limit})
    assert_answer(described, r, 422, "limit")
    assert (await client.get("/api/sessions", params={"public_key": "0xabc", "limit": 500})).status_code == 200


async def test_choosing_a_model_without_rig_answers_400_and_makes_nothing(
    client: httpx.AsyncClient, described: dict[str, Any]
) -> None:
    s = sid()
    for params in ({}, {"rig": ""}):
        assert_answer(described, await client.post("/api/control/model", params=params, headers=h(s)), 400, "rig")
    assert (await client.get("/api/state", headers=h(s))).json() == EMPTY
    r = await client.post("/api/control/model", params={"rig": "scripted"}, headers=h(s))
    assert r.json() == {"success": True, "rig": "scripted", "baml": None, "created": True}


async def test_unarchive_needs_a_session_and_no_key(
    client: httpx.AsyncClient, keys: dict[str, str], described: dict[str, Any]
) -> None:
    # A keyed App's session is unarchived by its id alone, as Aomi's widget sends it (no key).
    s = sid()
    research = k(keys["research"])
    r = await client.post("/api/sessions", params={"app": "research"}, json={}, headers={**h(s), **research})
    assert r.status_code == 200
    assert (await client.post(f"/api/sessions/{s}/archive")).json()["is_archived"] is True
    assert_answer(described, await client.post(f"/api/sessions/{sid()}/unarchive", headers=research), 404)
    assert (await client.get(f"/api/sessions/{s}")).json()["is_archived"] is True
    assert (await client.post(f"/api/sessions/{s}/unarchive")).json() == {"session_id": s, "is_archived": False}


# --- the description --------------------------------------------------------------------------------------


def documented_statuses() -> dict[tuple[str, str], set[int]]:
    """docs/api.md's routes table: (method, path as in /openapi.json) -> the error statuses it gives, with the
    503 and 500 it says any route may answer (all but the constant /health)."""
    table: dict[tuple[str, str], set[int]] = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"^\| `(GET|POST|PATCH|DELETE) (/[^`]*)`(?:, `(/[a-z]+)`)? \|.*\|([^|]*)\|$", line)
        if match is None:
            continue
        method, path, other, errors = match.groups()
        statuses = {int(s) for s in re.findall(r"\b[45]\d\d\b", errors)}
        if path != "/health" and not path.startswith("/console"):  # those answer without the runtime's actors
            statuses |= {500, 503}
        for each in (path, None if other is None else path.rsplit("/", 1)[0] + other):
            if each is not None:
                table[(method.lower(), each.replace("{id}", "{session_id}"))] = statuses
    return table


def test_the_description_names_every_status_the_routes_table_gives(described: dict[str, Any]) -> None:
    table = documented_statuses()
    routes = {(m, p) for p, item in described.items() for m in item}
    assert set(table) == routes  # the table documents every route, and no other
    assert table[("post", "/api/chat")] >= {400, 401, 403, 409, 413, 415, 422, 429, 503}  # the table was read
    missing = {
        f"{m.upper()} {p}": sorted(s for s in table[(m, p)] if str(s) not in described[p][m]["responses"])
        for m, p in sorted(routes)
    }
    assert {route: statuses for route, statuses in missing.items() if statuses} == {}
