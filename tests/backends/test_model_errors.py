"""`backends/models/_errors.py`: a provider SDK's failure as a sentence a user can read, for each SDK, with no key,
prompt or request body in it."""

from __future__ import annotations

from types import ModuleType

import anthropic
import httpx
import openai
import pytest

from aomi_runtime.agent.apps import ModelSpec
from aomi_runtime.agent.errors import ModelUnavailable
from aomi_runtime.backends.models._errors import provider_error

SPEC = ModelSpec(label="Big Model", slug="big", provider="openai", model="big-1", timeout_seconds=2.5)
REQUEST = httpx.Request("POST", "https://provider.example/v1/chat?key=sk-secret", json={"prompt": "my secret plan"})


@pytest.fixture(params=[openai, anthropic], ids=["openai", "anthropic"])
def sdk(request: pytest.FixtureRequest) -> ModuleType:
    return request.param  # type: ignore[no-any-return]


def said(exc: Exception, sdk: ModuleType) -> str:
    error = provider_error(SPEC, exc, sdk)
    assert type(error) is ModelUnavailable
    message = str(error)
    assert "sk-secret" not in message and "secret plan" not in message
    return message


def test_a_timeout_names_the_model_and_its_limit(sdk: ModuleType) -> None:
    assert (
        said(sdk.APITimeoutError(request=REQUEST), sdk)
        == "The model 'Big Model' did not answer within 2.5 s; try again later."
    )


def test_a_status_names_the_model_the_status_and_the_providers_message(sdk: ModuleType) -> None:
    response = httpx.Response(429, request=REQUEST, json={"error": {"message": "slow down"}})
    exc = sdk.APIStatusError("slow down", response=response, body=None)
    assert said(exc, sdk) == "The model 'Big Model' failed: its provider answered 429. slow down"


def test_a_connection_failure_says_it_could_not_be_reached(sdk: ModuleType) -> None:
    assert (
        said(sdk.APIConnectionError(request=REQUEST), sdk)
        == "The model 'Big Model' could not be reached; try again later."
    )


def test_anything_else_names_only_its_class(sdk: ModuleType) -> None:
    assert said(ValueError("sk-secret in my secret plan"), sdk) == "The model 'Big Model' failed: ValueError."
