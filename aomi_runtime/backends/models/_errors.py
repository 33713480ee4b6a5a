"""Provider SDK failures as sentences a user can read. OpenAI's and Anthropic's SDKs share the class names."""

from __future__ import annotations

from types import ModuleType

from ...agent.apps import ModelSpec
from ...agent.errors import ModelUnavailable


def provider_error(spec: ModelSpec, exc: Exception, sdk: ModuleType) -> ModelUnavailable:
    """No key, prompt or request body goes into the message: only what failed and what to do."""
    where = f"The model {spec.label!r}"
    if isinstance(exc, sdk.APITimeoutError):
        return ModelUnavailable(f"{where} did not answer within {spec.timeout_seconds:g} s; try again later.")
    if isinstance(exc, sdk.APIStatusError):
        detail = exc.message if isinstance(exc.message, str) else ""
        return ModelUnavailable(f"{where} failed: its provider answered {exc.status_code}. {detail}".strip())
    if isinstance(exc, sdk.APIConnectionError):
        return ModelUnavailable(f"{where} could not be reached; try again later.")
    return ModelUnavailable(f"{where} failed: {type(exc).__name__}.")
