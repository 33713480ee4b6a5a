"""Errors to HTTP: one table from error class to status, and handlers that answer `{"error": ...}`."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError, RayTaskError
from starlette.exceptions import HTTPException
from starlette.types import Scope

from ..agent.errors import AomiError
from ..agent.logs import log_failure
from ..status import status_of

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _cause(exc: Exception) -> Exception:
    # An error raised in an actor arrives as a RayTaskError that is also the original class; its str() is a
    # traceback, so answer with the original's message.
    return exc.cause if isinstance(exc, RayTaskError) and isinstance(exc.cause, Exception) else exc


async def _aomi_error(request: Request, exc: Exception) -> JSONResponse:
    cause = _cause(exc)
    assert isinstance(cause, AomiError)
    return error_response(status_of(cause), cause.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return error_response(400, "The body is not valid JSON.")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    )
    return error_response(422, f"The request is not valid: {problems}.")


ROUTING_ERRORS = {
    404: "No such route; the routes are described at /openapi.json.",
    405: "This route does not take that method; the routes are described at /openapi.json.",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    # Starlette's routing errors say only "Not Found" or "Method Not Allowed": say what to do too.
    generic = exc.detail == HTTPStatus(exc.status_code).phrase
    return error_response(
        exc.status_code, ROUTING_ERRORS.get(exc.status_code, str(exc.detail)) if generic else str(exc.detail)
    )


async def _actor_gone(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: an actor went away: %s", request.method, route_name(request.scope), type(exc).__name__)
    return error_response(503, "The session's process stopped while answering; its stored state is safe. Try again.")


def route_name(scope: Scope) -> str:
    """A request's route for logs: its pattern, not its path (`/api/sessions/{id}`'s path holds a session id,
    which is a capability)."""
    return getattr(scope.get("route"), "path", None) or "an unknown route"


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log_failure(log, f"{request.method} {route_name(request.scope)}", exc)
    return error_response(500, "Internal error; it was logged.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AomiError, _aomi_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RayActorError, _actor_gone)
    app.add_exception_handler(Exception, _unexpected)
