"""The package's front door: `from aomi_runtime import ...` gives exactly the public names, each the real thing."""

from __future__ import annotations

import subprocess
import sys

import aomi_runtime
from aomi_runtime.agent.errors import AomiError

PUBLIC = {
    # the clients
    "AsyncClient",
    "AsyncSession",
    "Client",
    "Reply",
    "Session",
    # running it, and declaring Apps and their tools
    "Settings",
    "AppSpec",
    "Limits",
    "ModelSpec",
    "Tool",
    "ToolContext",
    "tool",
    # what a custom backend implements
    "HistoryBackend",
    "ModelProvider",
    "ModelRequest",
    "ModelChunk",
    "TextDelta",
    "ToolCallRequest",
    "ToolSpec",
    "Usage",
    # what the clients return
    "Event",
    "Message",
    "SessionInfo",
    "Snapshot",
    # every error
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
}


def every_error() -> set[type[AomiError]]:
    found, todo = set(), [AomiError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_front_door_exports_exactly_the_public_names() -> None:
    assert set(aomi_runtime.__all__) == PUBLIC
    for name in PUBLIC:
        value = getattr(aomi_runtime, name)
        assert getattr(value, "__name__", name) == name or name == "ModelChunk", name


def test_every_error_the_package_raises_is_exported() -> None:
    assert {cls.__name__ for cls in every_error()} <= set(aomi_runtime.__all__)
    assert all(getattr(aomi_runtime, cls.__name__) is cls for cls in every_error())


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        aomi_runtime.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name was found")


def test_importing_the_package_loads_nothing_heavy() -> None:
    # A session actor imports the domain through this package: the front door must not pull in the client,
    # Serve or the SQL layer. A name loads its module on first use.
    check = (
        "import sys, aomi_runtime; heavy = ('ray', 'httpx', 'fastapi', 'sqlalchemy', 'pydantic_settings');"
        "print(','.join(m for m in heavy if m in sys.modules)); from aomi_runtime import tool;"
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "" and out[1] == "False"
