"""What the runtime writes to its logs about sessions, at the default level: which session (by a fingerprint,
since a session id is the capability to read it) and what failed where (the error's class and frames), never
what anyone said: an error's text may quote a user's message, a tool's arguments or a provider's answer. The
text and the full traceback are logged at DEBUG, for an operator who turns that on."""

from __future__ import annotations

import hashlib
import logging
import os
import traceback
from pathlib import Path

FRAMES = 4


def fingerprint(session_id: str) -> str:
    """A session's name in logs: `sha256(id)[:12]`, which an operator holding the id can compute, and a reader
    of the logs cannot turn back into the id."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:12]


def log_failure(log: logging.Logger, what: str, exc: BaseException, level: int = logging.ERROR) -> None:
    """Log that `what` failed with `exc`: its class and innermost frames at `level`, its text at DEBUG."""
    frames = traceback.extract_tb(exc.__traceback__)[-FRAMES:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)) or "?"
    log.log(level, "%s failed: %s at %s", what, type(exc).__name__, where)
    log.debug("%s failed", what, exc_info=exc)


def configure_logging() -> None:
    """Send the runtime's own log lines to stderr at `AOMI_LOG_LEVEL` (default INFO) in this process. Each Ray
    actor is a process whose root logger Ray leaves at WARNING, so the actors call this as they start; Ray
    keeps each actor's stderr in its logs."""
    logger = logging.getLogger("aomi_runtime")
    logger.setLevel(os.environ.get("AOMI_LOG_LEVEL", "INFO").upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # one line each, whatever the process's root logger does
