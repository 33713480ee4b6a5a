"""History backends: in memory, SQL (SQLite, PostgreSQL), or a custom one by import path."""

from __future__ import annotations

import importlib

from ...agent.errors import InvalidInput
from ...agent.protocols import HistoryBackend
from .group import GroupCommit
from .memory import InMemoryHistory
from .sql import SqlHistory

MEMORY_URL = "memory://"


def open_history(url: str, *, migrate: bool = True) -> HistoryBackend:
    """The backend a URL names: `memory://`, an SQLAlchemy URL (`sqlite:///aomi.db`, `postgresql://...`),
    or `package.module:factory`, a callable returning a `HistoryBackend`. Call `setup()` before use, which
    upgrades a database's schema, or with `migrate` off refuses one behind this version's."""
    if url == MEMORY_URL:
        return InMemoryHistory()
    if "://" in url:
        return SqlHistory.from_url(url, migrate=migrate)
    module_name, _, attribute = url.partition(":")
    if not attribute:
        raise InvalidInput(
            f"Unknown history backend {url!r}: not 'memory://', a database URL, or 'package.module:factory'."
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"Cannot import the history backend {url!r}: {exc}") from exc
    backend = factory()
    if not isinstance(backend, HistoryBackend):
        # The protocol grows with the runtime (`messages`, for history pages): say what a backend written before lacks.
        missing = [
            name for name in dir(HistoryBackend) if not name.startswith("_") and getattr(backend, name, None) is None
        ]
        raise InvalidInput(
            f"{url!r} made a {type(backend).__name__}, which is not a HistoryBackend: it has no {', '.join(missing)}."
        )
    return backend


__all__ = ["MEMORY_URL", "GroupCommit", "InMemoryHistory", "SqlHistory", "open_history"]
