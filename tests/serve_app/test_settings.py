"""Settings from the environment: the session resource an operator sets for an autoscaling cluster, and the
Ray settings a runtime that starts its own Ray gives it."""

from __future__ import annotations

import os

import pytest
import ray
from pydantic import ValidationError

from aomi_runtime.actors.node import LEAN_RAY_ENV
from aomi_runtime.actors.placement import DEFAULT_PLACEMENT_SECONDS, SessionPlacement
from aomi_runtime.serve_app import cli, launch
from aomi_runtime.serve_app import ingress as ingress_env
from aomi_runtime.serve_app.settings import Settings
from tests.conftest import free_port


def test_by_default_session_actors_ask_for_no_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOMI_SESSION_RESOURCES", raising=False)
    assert Settings().placement == SessionPlacement({}, DEFAULT_PLACEMENT_SECONDS)


def test_the_session_resource_is_read_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOMI_SESSION_RESOURCES", '{"aomi_session": 1}')
    monkeypatch.setenv("AOMI_SESSION_PLACEMENT_SECONDS", "90")
    assert Settings().placement == SessionPlacement({"aomi_session": 1.0}, 90.0)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ('{"CPU": 1}', "'CPU' is one of Ray's own"),
        ('{"aomi_session": 0}', "an actor must ask for more than 0"),
        ('["aomi_session"]', "valid dictionary"),
    ],
)
def test_a_resource_ray_would_refuse_is_refused_here_naming_it(
    monkeypatch: pytest.MonkeyPatch, resources: str, message: str
) -> None:
    monkeypatch.setenv("AOMI_SESSION_RESOURCES", resources)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_launch_starts_ray_lean_unless_told_not_to_with_the_replica_on_the_users_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Started(Exception):
        pass

    seen: list[dict[str, str]] = []

    def init(**_: object) -> None:  # instead of starting Ray: what its processes would inherit
        seen.append(dict(os.environ))
        raise Started

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    port = free_port()
    for lean, ingress in (("true", "direct"), ("false", "proxy")):
        monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in LEAN_RAY_ENV})
        monkeypatch.setenv("AOMI_LEAN_RAY", lean)
        monkeypatch.setenv("AOMI_INGRESS", ingress)
        with pytest.raises(Started):
            launch.launch(Settings(port=port))
    assert all(seen[0][name] == value for name, value in LEAN_RAY_ENV.items())
    assert not set(LEAN_RAY_ENV) & set(seen[1])
    # Direct: Serve's range of replica ports is the one port (its upper end excluded), and a stop waits for no
    # load balancer. Through the proxy, direct ingress is off whatever the environment said.
    direct = {name: seen[0][name] for name in ingress_env.INGRESS_ENV}
    assert direct == {
        ingress_env.DIRECT_INGRESS_ENV: "1",
        ingress_env.MIN_PORT_ENV: str(port),
        ingress_env.MAX_PORT_ENV: str(port + 1),
        ingress_env.DRAINING_ENV: "0",
        ingress_env.QUARANTINE_ENV: "0",
    }
    assert seen[1][ingress_env.DIRECT_INGRESS_ENV] == "0"


def test_the_ingress_is_direct_by_default_and_the_proxy_one_setting_away(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Settings] = []
    monkeypatch.delenv("AOMI_INGRESS", raising=False)
    monkeypatch.setattr(cli, "serve_until_stopped", lambda settings, address: started.append(settings))
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--ingress", "proxy"]) == 0
    monkeypatch.setenv("AOMI_INGRESS", "proxy")
    assert cli.main(["serve"]) == 0
    assert [s.ingress for s in started] == ["direct", "proxy", "proxy"]
    monkeypatch.setenv("AOMI_INGRESS", "haproxy")
    assert cli.main(["serve"]) == 2  # refused, saying why, before anything starts
    with pytest.raises(SystemExit):
        cli.main(["serve", "--direct-ingress"])  # one way to choose it


def test_sessions_per_actor_is_one_by_default_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AOMI_SESSIONS_PER_ACTOR", raising=False)
    assert Settings().placement.sessions_per_actor == 1  # the shape the runtime was specified with
    monkeypatch.setenv("AOMI_SESSIONS_PER_ACTOR", "64")
    assert Settings().placement.sessions_per_actor == 64
    monkeypatch.setenv("AOMI_SESSIONS_PER_ACTOR", "0")
    with pytest.raises(ValidationError, match="sessions_per_actor"):
        Settings()


def test_the_cli_packs_sessions_with_one_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Settings] = []
    monkeypatch.delenv("AOMI_SESSIONS_PER_ACTOR", raising=False)
    monkeypatch.setattr(cli, "serve_until_stopped", lambda settings, address: started.append(settings))
    assert cli.main(["serve", "--sessions-per-actor", "64"]) == 0
    assert [s.placement.sessions_per_actor for s in started] == [64]
    assert cli.main(["serve", "--sessions-per-actor", "0"]) == 2  # refused, saying why, before anything starts
    assert len(started) == 1


def test_a_custom_history_backend_without_a_method_of_the_protocol_is_refused_at_start_naming_it() -> None:
    # Refused where the runtime starts, not in the App's store actor, where it would fail every request instead.
    with pytest.raises(ValidationError, match=r"it has no messages\."):
        Settings(database_url="tests.contracts.test_history_backend:WithoutPages")
    with pytest.raises(ValidationError, match="Cannot import the history backend"):
        Settings(database_url="no_such_module:factory")
    url = "tests.contracts.test_history_backend:custom_backend"
    assert Settings(database_url=url).database_url == url
