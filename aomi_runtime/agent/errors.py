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
    └── LimitReached          a limit the operator set for the App (sessions it holds, streams on a session)

Each takes one positional message, so that it pickles across Ray unchanged: the serving layer maps
classes to statuses in one table (`serve_app/status.py`).
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
