"""What `launch` adds to the runtime env of the job it starts on a cluster, merged as `ray.init` merges it with the
runtime env of a Ray Job (`ray job submit --runtime-env-json ...`) it runs in."""

from __future__ import annotations

import json

from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR
from ray.job_config import JobConfig
from ray.runtime_env.runtime_env import _merge_runtime_env

from aomi_runtime.serve_app.launch import tracing_runtime_env

ENDPOINT = "http://collector:4318"


def merged_as_ray_init_does(environ: dict[str, str]) -> dict[str, object] | None:
    """`ray.init`'s merge of the job's runtime env and the driver's (None: a conflict, for which it raises)."""
    job = JobConfig.from_json(json.loads(environ[RAY_JOB_CONFIG_JSON_ENV_VAR]))
    return _merge_runtime_env(job.runtime_env, tracing_runtime_env(environ))


def test_in_a_ray_job_that_sets_otel_variables_they_are_not_sent_again() -> None:
    # The job's env_vars are in the driver's environment too: sending them again is a conflict ray.init refuses.
    # As Ray's job supervisor hands the job's config to the driver it starts.
    job = {"runtime_env": {"env_vars": {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}}, "metadata": {}}
    environ = {
        RAY_JOB_CONFIG_JSON_ENV_VAR: json.dumps(job),
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_SERVICE_NAME": "chat",  # the node's own, not the job's: still sent
    }
    merged = merged_as_ray_init_does(environ)
    assert merged is not None, "ray.init would refuse to start: the job's variables sent again"
    assert merged["env_vars"] == {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SERVICE_NAME": "chat"}


def test_outside_a_job_the_otel_variables_go_with_it_and_nothing_else() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "PATH": "/bin"}
    assert tracing_runtime_env(environ) == {"env_vars": {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}}
    assert tracing_runtime_env({"PATH": "/bin"}) is None
