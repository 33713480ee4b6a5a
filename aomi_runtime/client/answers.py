"""How the client reads the runtime's error answers: each as the runtime's own error class (the status table
of `aomi_runtime/status.py`, read the other way round), and which are worth sending again."""

from __future__ import annotations

import httpx

from ..agent.errors import ServerError
from ..status import error_of_status

RETRIED_STATUSES = {502, 503, 504}  # the runtime (re)starting, or a session's process replaced: try again


def runtime_error_message(response: httpx.Response) -> str | None:
    """The message of an answer in the runtime's error shape, `{"error": ...}`; None for anything else (a proxy's
    page, Serve's 404 while the runtime is not deployed yet)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["error"]) if isinstance(body, dict) and set(body) == {"error"} else None


def error_of_answer(response: httpx.Response) -> Exception:
    """The error an error answer stands for: the runtime's own class, or `ServerError` with the status."""
    message = runtime_error_message(response)
    if message is None:
        return ServerError(
            f"{response.status_code} {response.reason_phrase}: {response.text[:200]}", response.status_code
        )
    return error_of_status(response.status_code, message)


def retried(response: httpx.Response) -> bool:
    """Whether an error answer may be worth sending again: the runtime (re)starting, or not the runtime's."""
    return response.status_code in RETRIED_STATUSES or runtime_error_message(response) is None
