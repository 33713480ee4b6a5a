"""Which HTTP status each of the runtime's errors answers with: one table, read by the server's error handlers
and, the other way round, by the Python client (so it raises the class the server raised)."""

from __future__ import annotations

from ..agent.errors import (
    AomiError,
    AppMismatch,
    Forbidden,
    InvalidInput,
    MessageTooLarge,
    ModelUnavailable,
    NoCapacity,
    SessionClosed,
    SessionNotFound,
    StorageError,
    TooManyStreams,
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
    TooManyStreams: 429,
}


def status_of(exc: AomiError) -> int:
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)


class ServerError(AomiError):
    """An error answer whose status names no single class of the runtime's (a 503, a 422, a 500), or that did
    not come from the runtime (a proxy; Serve before the runtime is deployed). `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def error_of_status(status: int, message: str) -> AomiError:
    """The error a client raises for an error answer: the server's own class where the status names one."""
    classes = [cls for cls, code in STATUS.items() if code == status]
    return classes[0](message) if len(classes) == 1 else ServerError(message, status)
