"""aomi-runtime: the Aomi agent runtime as actors on Ray.

The Python client is importable from here (`from aomi_runtime import Client`), loaded on first use so that
importing the package costs nothing more.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "Reply"]


def __getattr__(name: str) -> Any:
    if name in ("AsyncClient", "Client", "Reply"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'aomi_runtime' has no attribute {name!r}")
