"""The runtime's errors, free of HTTP.

    AomiError
    ├── InvalidInput          a request that cannot be served as sent
    │   └── MessageTooLarge   a message over the App's size limit
    ├── Unauthorized          no key where the App needs one
    ├── Forbidden             a key that is unknown or not scoped to the App
    ├── SessionNotFound       no such session (live or stored) in this App
    ├── AppMismatch           the session belongs to another App
    ├── SessionClosed         the session's actor is shutting down; look it up again
    ├── ModelUnavailable      the model provider failed or is unknown
    ├── StorageError          the history backend could not store or read
    ├── NoCapacity            no node had room for another live session in time
    ├── LimitReached          a limit the operator set for the App (sessions it holds, streams on a session)
    ├── NotConfigured         the App offers no such feature (no simulator)
    ├── ServerError           an error answer the client has no class of its own for (carries `status`)
    ├── ConfigError           the configuration cannot be used (also a ValueError)
    └── DeploymentError       the runtime cannot be started or reached where asked (also a RuntimeError)

Each takes one positional message (`ServerError` also its status), so that it pickles across Ray unchanged:
the serving layer maps classes to statuses in one table (`aomi_runtime/status.py`), which the Python client
reads the other way round.
"""

from __future__ import annotations


class AomiError(Exception):
    """Base class of every error the runtime raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(AomiError):
    """The request is malformed: a missing field, a bad id, a value of the wrong shape."""


class MessageTooLarge(InvalidInput):
    """The message is larger than the App allows."""


class Unauthorized(AomiError):
    """The App needs a key and none was sent."""


class Forbidden(AomiError):
    """The key sent is unknown, revoked, or scoped to another App."""


class SessionNotFound(AomiError):
    """No session with this id exists in this App, live or stored."""


class AppMismatch(AomiError):
    """The session exists but belongs to another App; a session's App never changes."""

    @classmethod
    def of(cls, session_id: str, app: str) -> AppMismatch:
        """The error for `session_id` asked of `app`, which does not hold it: one message wherever it is found."""
        return cls(f"The session {session_id!r} belongs to another App than {app!r}; a session's App never changes.")


class SessionClosed(AomiError):
    """The session's actor is closing (evicted or deleted); the caller should look it up again."""


class ModelUnavailable(AomiError):
    """The model provider failed, timed out, or the model asked for is not offered."""


class StorageError(AomiError):
    """The history backend failed to store or read; nothing was acknowledged."""


class NoCapacity(AomiError):
    """No node could take another live session in time (all session slots taken while the cluster scales up,
    or no node declares the session resource); nothing was changed, and the request can be sent again."""


class LimitReached(AomiError):
    """A limit the operator set was reached (the sessions an App holds, the streams open on a session); the
    message names it, and what frees room."""


class NotConfigured(AomiError):
    """The App does not offer what was asked (a transaction simulator); the message says what to configure."""


class ServerError(AomiError):
    """An error answer whose status names no single class of the runtime's (a 503, a 422, a 500), or that did
    not come from the runtime (a proxy; Serve before the runtime is deployed). `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(AomiError, ValueError):
    """The configuration (a file of Apps, a setting) cannot be used; the message says where and why. A
    `ValueError` too, so that pydantic reports it as a setting's validation error."""


class DeploymentError(AomiError, RuntimeError):
    """The runtime cannot be started or reached where asked: Serve already runs in the Ray instance joined,
    direct ingress is off there, or no runtime is deployed in the cluster for an App."""
