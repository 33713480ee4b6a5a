"""Which HTTP status each of the runtime's errors answers with: one table, read by the server's error handlers
and, the other way round, by the Python client (so it raises the class the server raised)."""

from __future__ import annotations

from .agent.errors import (
    AomiError,
    AppMismatch,
    Forbidden,
    InvalidInput,
    LimitReached,
    MessageTooLarge,
    ModelUnavailable,
    NoCapacity,
    ServerError,
    SessionClosed,
    SessionNotFound,
    StorageError,
    Unauthorized,
)

STATUS: dict[type[AomiError], int] = {
    MessageTooLarge: 413,
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    SessionNotFound: 404,
    AppMismatch: 409,
    SessionClosed: 503,
    ModelUnavailable: 503,
    StorageError: 503,
    NoCapacity: 503,
    LimitReached: 429,
}


def status_of(exc: AomiError) -> int:
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)


def error_of_status(status: int, message: str) -> AomiError:
    """The error a client raises for an error answer: the server's own class where the status names one."""
    classes = [cls for cls, code in STATUS.items() if code == status]
    return classes[0](message) if len(classes) == 1 else ServerError(message, status)
