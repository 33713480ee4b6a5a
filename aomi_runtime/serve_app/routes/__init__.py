"""The HTTP routes of the API, one router a resource: each route parses, is handed its App authorized
(`..auth`), awaits the session's actor, and answers."""

from __future__ import annotations

from fastapi import APIRouter

from . import chat, console, control, ops, provider_keys, secrets, sessions, simulate, streams

ROUTERS: tuple[APIRouter, ...] = (
    ops.router,
    chat.router,
    streams.router,
    sessions.router,
    control.router,
    provider_keys.router,
    secrets.router,
    simulate.router,
    console.router,
)
