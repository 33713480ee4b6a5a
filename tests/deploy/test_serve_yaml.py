"""deploy/serve.yaml as Serve reads it: Serve's own schema, and the application its import path builds from the
environment alone (no builder arguments), with options that agree with the file."""

from __future__ import annotations

from typing import Any

import pytest
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
from ray.serve._private.build_app import build_app
from ray.serve.schema import ServeDeploySchema

from aomi_runtime.serve_app.settings import Settings
from tests.deploy.files import IMPORT_PATH, SERVE_YAML, load, serve_env, session_placement


@pytest.fixture(scope="module")
def schema() -> ServeDeploySchema:
    return ServeDeploySchema.model_validate(load(SERVE_YAML))


def test_the_file_follows_serves_schema(schema: ServeDeploySchema) -> None:
    (app,) = schema.applications
    assert app.import_path == IMPORT_PATH and app.route_prefix == "/"
    assert schema.http_options.request_timeout_s is None  # a request timeout would cut every SSE stream


def test_the_ingress_scales_on_open_streams_and_stops_soon(schema: ServeDeploySchema) -> None:
    (deployment,) = schema.applications[0].deployments
    scaling: dict[str, Any] = deployment.autoscaling_config  # type: ignore[assignment]
    assert 1 <= scaling["min_replicas"] < scaling["max_replicas"]
    assert 0 < scaling["target_ongoing_requests"] < deployment.max_ongoing_requests  # type: ignore[operator]
    assert deployment.max_ongoing_requests >= 500  # type: ignore[operator]
    assert deployment.graceful_shutdown_timeout_s <= 10  # type: ignore[operator]


def test_the_builder_reads_its_settings_from_the_environment_and_matches_the_file(
    schema: ServeDeploySchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in serve_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AOMI_DATABASE_URL", "postgresql://aomi@db.internal/aomi")  # as the node's env file sets it
    (app,) = schema.applications
    # As Serve's build task does: import, call the builder with the file's (empty) arguments, build.
    built = build_app(call_user_app_builder_with_args_if_necessary(import_attr(app.import_path), app.args), name="t")
    deployments = {d.name: d for d in built.deployments}
    for options in app.deployments:
        assert options.name in deployments, f"the file configures {options.name!r}, which the application lacks"
        code = deployments[options.name]
        # The file repeats the code's values, so `serve run` of the import path behaves as `serve deploy` of the file.
        assert code.max_ongoing_requests == options.max_ongoing_requests
        assert code._deployment_config.graceful_shutdown_timeout_s == options.graceful_shutdown_timeout_s
    (settings,) = deployments[built.ingress_deployment_name].init_args
    assert isinstance(settings, Settings)
    assert settings.database_url == "postgresql://aomi@db.internal/aomi"
    assert settings.placement.resources == session_placement().resources
    assert settings.placement.sessions_per_actor == session_placement().sessions_per_actor  # its variable is read


def test_a_cluster_packs_sessions_into_actors_while_the_embedded_runtime_keeps_one_each() -> None:
    # A process per session caps a node at about a hundred live sessions: the file packs them. The default, which
    # `aomi-runtime serve` and the embedded runtime use, stays one session per actor.
    assert session_placement().sessions_per_actor > 1
    assert Settings.model_fields["sessions_per_actor"].default == 1
