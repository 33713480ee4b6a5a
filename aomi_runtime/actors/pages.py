"""A page of a session's history (messages or events): from the live session's memory where this replica knows
the actor holding it, else from the App's store, never loading the session for it.

Every message and event a live session shows was committed first, so the store holds all a page from memory
would show, but a streaming message's text so far (stored when the message ends; memory shows it, as a snapshot
does) and a commit's events a moment before they are published. A session held live elsewhere (by an actor this
replica has not met) is read from the store, as an evicted one is.
"""

from __future__ import annotations

from typing import Any

from ray.exceptions import RayActorError

from ..agent.errors import SessionClosed
from .app_actors import AppActors
from .runtime import Runtime


async def read_page(runtime: Runtime, owner: AppActors, session_id: str, kind: str, *args: Any) -> list[Any]:
    """`kind` is `messages` or `events`: the session actor's `<kind>_page` and the store's `<kind>`, called with
    `args` (a cursor and a limit). Raises `SessionNotFound` if the session was deleted since this replica met it."""
    handle = runtime.live_handle(session_id)
    if handle is not None:
        try:
            live: list[Any] = await getattr(handle, f"{kind}_page").remote(session_id, *args)
            return live
        except (RayActorError, SessionClosed):  # evicted, moved or deleted since: the store holds all it showed
            runtime.forget(session_id)
            await runtime.session_app(session_id)  # deleted (by another replica): 404, not an empty page
    stored: list[Any] = await getattr(owner.store, kind).remote(owner.spec.name, session_id, *args)
    return stored
