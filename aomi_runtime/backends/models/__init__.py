"""Model backends: what answers a turn, built from an App's `ModelSpec`."""

from __future__ import annotations

from ...agent.apps import ModelSpec
from ...agent.protocols import ModelProvider
from .scripted import ScriptedModel


def load_model(spec: ModelSpec, api_key: str | None = None) -> ModelProvider:
    """Build the provider a `ModelSpec` names. Provider SDKs are imported only by Apps that use them."""
    if spec.provider == "openai":
        from .openai_compat import OpenAICompatible

        return OpenAICompatible(spec, api_key)
    if spec.provider == "anthropic":
        from .anthropic import AnthropicMessages

        return AnthropicMessages(spec, api_key)
    return ScriptedModel(**spec.options)


__all__ = ["ScriptedModel", "load_model"]
