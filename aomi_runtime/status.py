"""Which HTTP status each of the runtime's errors answers with: one table, read by the server's error handlers
and, the other way round, by the Python client (so it raises the class the server raised)."""

from __future__ import annotations

from .agent import errors
from .agent.errors import AomiError, ServerError

STATUS: dict[type[AomiError], int] = {
    errors.MessageTooLarge: 413,
    errors.InvalidInput: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.SessionNotFound: 404,
    errors.AppMismatch: 409,
    errors.SessionClosed: 503,
    errors.ModelUnavailable: 503,
    errors.StorageError: 503,
    errors.NoCapacity: 503,
    errors.LimitReached: 429,
    errors.NotConfigured: 501,
}


def status_of(exc: AomiError) -> int:
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)


def error_of_status(status: int, message: str) -> AomiError:
    """The error a client raises for an error answer: the server's own class where the status names one."""
    classes = [cls for cls, code in STATUS.items() if code == status]
    return classes[0](message) if len(classes) == 1 else ServerError(message, status)
