"""Model backends: what answers a turn, built from an App's `ModelSpec`."""

from __future__ import annotations

from ...agent.apps import ModelSpec
from ...agent.errors import ModelUnavailable
from ...agent.protocols import ModelProvider
from .scripted import ScriptedModel


def load_model(spec: ModelSpec) -> ModelProvider:
    """Build the provider a `ModelSpec` names."""
    if spec.provider == "scripted":
        return ScriptedModel(**spec.options)
    raise ModelUnavailable(f"Unknown model provider {spec.provider!r} for the model {spec.slug!r}.")


__all__ = ["ScriptedModel", "load_model"]
