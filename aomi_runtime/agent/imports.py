"""What an App names by import path (`package.module:name`): its tools, its simulator."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import InvalidInput


def import_named(path: str, what: str) -> Any:
    """The object `path` names. Raises `InvalidInput`, saying it is a `what`, if it is no import path or fails."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise InvalidInput(f"Unknown {what} {path!r}: not a built-in {what}, nor an import path 'package.module:name'.")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"Cannot import {what} {path!r}: {exc}") from exc
