"""The OpenAPI description at /openapi.json is the API: schemathesis fuzzes the live runtime from it and checks
that no answer is a 500, and that every answer's status, content type and body are the ones described."""

from __future__ import annotations

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.specs.openapi import schemas as _openapi_schemas  # noqa: F401  # see SCHEMAS_AT_COLLECTION

from aomi_runtime.serve_app.api import create_api
from aomi_runtime.serve_app.settings import Settings

# SCHEMAS_AT_COLLECTION: the loader imports that module lazily, and pytest's assertion rewrite then parses it
# in the fixture, while other threads of this process (Ray's, a sync client's loop) may parse too; CPython
# 3.11.7's ast keeps its recursion depth in one global, and a run failed with "AST constructor recursion depth
# mismatch". Imported at collection, it is parsed before any of those threads run.

# Few examples per route, each mode: the runtime is real (Ray, Serve, SQLite), and a new session costs an actor.
EXAMPLES = 10
# Routes that answer 501 by design (an App without a simulator), which schemathesis counts as a server error.
NOT_IMPLEMENTED = {("POST", "/api/simulate")}
# The schema, built in-process at collection, names the operations; each test fuzzes the live runtime's own.
OPERATIONS = [
    (method.upper(), path)
    for path, item in create_api(None, Settings()).openapi()["paths"].items()  # type: ignore[arg-type]
    for method in item
    # /api/updates streams until the client leaves, and schemathesis reads an answer to its end: excluded here.
    # Its error answers are in test_bad_input.py, its stream in test_updates.py.
    if path != "/api/updates"
]


@pytest.fixture(scope="module")
def api_schema(runtime_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{runtime_url}/openapi.json")


# Not `schemathesis.pytest.from_fixture`: schemathesis 4.32 renames pytest's private `Function._nodeid`, which
# pytest 9 no longer has. A strategy per operation under Hypothesis' own `given` is its documented alternative.
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_runtime_answers_as_its_openapi_description_says(
    api_schema: schemathesis.BaseSchema, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        # Not positive_data_acceptance: a request the schema allows may still be refused for what a schema
        # cannot say (a model the App does not offer, user_state that is not a JSON object, a message over the
        # App's limit in bytes, a session another App holds). Those answers must still be documented ones.
        if (method, path) not in NOT_IMPLEMENTED:
            case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])
            return
        # 501 is this route's documented answer for an App without the feature; any other 5xx is still a failure.
        response = case.call(timeout=30)
        assert response.status_code == 501 or response.status_code < 500, response.text
        case.validate_response(response, excluded_checks=[positive_data_acceptance, not_a_server_error])

    fuzz()


async def test_the_description_names_the_answers_the_routes_give(runtime_url: str) -> None:
    async with httpx.AsyncClient(base_url=runtime_url) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert list(paths["/api/updates"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    assert list(paths["/console"]["get"]["responses"]["200"]["content"]) == ["text/html"]
    assert list(paths["/console/{name}"]["get"]["responses"]["200"]["content"]) == ["text/javascript", "text/css"]
    chat = paths["/api/chat"]["post"]
    snapshot = chat["responses"]["200"]["content"]["application/json"]["schema"]
    assert snapshot == {"$ref": "#/components/schemas/Snapshot"}
    assert set(chat["responses"]) == {"200", "400", "401", "403", "409", "413", "415", "422", "429", "500", "503"}
    error = chat["responses"]["413"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error"] and list(error["properties"]) == ["error"]
    header = next(p for p in chat["parameters"] if p["name"] == "x-session-id")
    assert header["required"] and header["schema"]["pattern"] == "^[A-Za-z0-9._:-]{1,128}$"
    for item in paths.values():
        for operation in item.values():
            assert "HTTPValidationError" not in str(operation["responses"])  # 422 is {"error": ...} too
