"""aomi-runtime: the Aomi agent runtime as actors on Ray. This is its front door: everything a user of the
package imports is importable from here.

    from aomi_runtime import Client, tool, ToolContext, AppSpec, Settings

Names load on first use (PEP 562), so that `import aomi_runtime` costs nothing more: a session actor, which
imports the domain, never loads the client, Serve or the SQL layer through here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent.apps import AppSpec, Limits, ModelSpec
    from .agent.errors import (
        AomiError,
        AppMismatch,
        ConfigError,
        DeploymentError,
        Forbidden,
        InvalidInput,
        LimitReached,
        MessageTooLarge,
        ModelUnavailable,
        NoCapacity,
        NotConfigured,
        ServerError,
        SessionClosed,
        SessionNotFound,
        StorageError,
        Unauthorized,
    )
    from .agent.protocols import (
        HistoryBackend,
        ModelChunk,
        ModelProvider,
        ModelRequest,
        TextDelta,
        ToolCallRequest,
        ToolSpec,
        Usage,
    )
    from .agent.records import Event, Message, SessionInfo, Snapshot
    from .agent.tools import Tool, ToolContext, tool
    from .client import AsyncClient, AsyncSession, Client, Reply, Session
    from .serve_app.settings import Settings

__version__ = "0.1.0"

_WHERE = {
    "agent.apps": ("AppSpec", "Limits", "ModelSpec"),
    "agent.errors": (
        "AomiError",
        "AppMismatch",
        "ConfigError",
        "DeploymentError",
        "Forbidden",
        "InvalidInput",
        "LimitReached",
        "MessageTooLarge",
        "ModelUnavailable",
        "NoCapacity",
        "NotConfigured",
        "ServerError",
        "SessionClosed",
        "SessionNotFound",
        "StorageError",
        "Unauthorized",
    ),
    "agent.protocols": (
        "HistoryBackend",
        "ModelChunk",
        "ModelProvider",
        "ModelRequest",
        "TextDelta",
        "ToolCallRequest",
        "ToolSpec",
        "Usage",
    ),
    "agent.records": ("Event", "Message", "SessionInfo", "Snapshot"),
    "agent.tools": ("Tool", "ToolContext", "tool"),
    "client": ("AsyncClient", "AsyncSession", "Client", "Reply", "Session"),
    "serve_app.settings": ("Settings",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "AomiError",
    "AppMismatch",
    "AppSpec",
    "AsyncClient",
    "AsyncSession",
    "Client",
    "ConfigError",
    "DeploymentError",
    "Event",
    "Forbidden",
    "HistoryBackend",
    "InvalidInput",
    "LimitReached",
    "Limits",
    "Message",
    "MessageTooLarge",
    "ModelChunk",
    "ModelProvider",
    "ModelRequest",
    "ModelSpec",
    "ModelUnavailable",
    "NoCapacity",
    "NotConfigured",
    "Reply",
    "ServerError",
    "Session",
    "SessionClosed",
    "SessionInfo",
    "SessionNotFound",
    "Settings",
    "Snapshot",
    "StorageError",
    "TextDelta",
    "Tool",
    "ToolCallRequest",
    "ToolContext",
    "ToolSpec",
    "Unauthorized",
    "Usage",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'aomi_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
