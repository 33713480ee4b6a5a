"""Client secrets as a session sees them: the rules on names and sizes, the reader a tool is handed (bound to the
session's own client), and the client's own provider key a turn calls its model with.

Secrets belong to (App, client_id). The App's store holds them (`backends.secrets`); a session reads only those of
the client it is bound to (`SessionRecord.client_id`), through the `SecretSource` its App was built with.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from .errors import InvalidInput

if TYPE_CHECKING:
    from .apps import App
    from .records import SessionRecord

SECRET_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
MAX_SECRET_BYTES = 8 * 1024  # a provider key is ~200 bytes; a JSON credential fits
MAX_SECRETS_PER_CLIENT = 64
HANDLE_PREFIX = "$SECRET:"
PROVIDER_KEY_PREFIX = "PROVIDER_KEY:"  # the widget stores a client's provider keys as secrets of this name

ClientKeyProvider = Literal["openai", "anthropic", "openrouter"]
CLIENT_KEY_PROVIDERS: tuple[str, ...] = get_args(ClientKeyProvider)


class SecretSource(Protocol):
    """Where an App's secrets are kept: its store (through the store actor, for session actors)."""

    async def secret(self, client_id: str, name: str) -> str | None: ...


def check_secret(name: str, value: str | None = None) -> None:
    """Raise `InvalidInput` for a malformed name or a value that is empty, too large or not text. The error never
    holds the value."""
    if not SECRET_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"A secret's name is 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'; {name[:64]!r} is not."
        )
    if value is None:
        return
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"The secret {name!r} holds a lone surrogate, which is not text.") from None
    if not 0 < size <= MAX_SECRET_BYTES:
        raise InvalidInput(f"The secret {name!r} must be 1 to {MAX_SECRET_BYTES} bytes.")


def provider_key_name(provider: str) -> str:
    if provider not in CLIENT_KEY_PROVIDERS:
        raise InvalidInput(f"Unknown provider {provider!r}; use one of: {', '.join(CLIENT_KEY_PROVIDERS)}.")
    return PROVIDER_KEY_PREFIX + provider


def key_prefix(value: str) -> str:
    """What a listing shows of a key: a few characters, never more than a quarter of it."""
    return value[: min(8, len(value) // 4)]


@dataclass(frozen=True)
class ClientSecrets:
    """The secrets of one client of one App: what a tool of a session bound to that client may read."""

    source: SecretSource
    client_id: str

    async def get(self, name: str) -> str | None:
        check_secret(name)
        return await self.source.secret(self.client_id, name)


@asynccontextmanager
async def for_client(app: App, record: SessionRecord) -> AsyncIterator[App]:
    """The App a turn (or title) of `record` runs with: its tools may read the client's secrets, and its model, if
    the client set its own key for the model's provider, is called with that key, not the operator's.

    A provider made for the client's key lives for this block only: it is closed after it."""
    if app.secrets is None or not record.client_id:
        yield app
        return
    client = ClientSecrets(app.secrets, record.client_id)
    model = app.spec.model(record.model)
    provider = model.client_key_provider if model is not None else None
    key = await client.get(PROVIDER_KEY_PREFIX + provider) if provider and app.make_provider else None
    if model is None or key is None or app.make_provider is None:
        yield dataclasses.replace(app, client=client)
        return
    own = app.make_provider(model, key)
    try:
        yield dataclasses.replace(app, client=client, providers={**app.providers, model.slug: own})
    finally:
        await own.aclose()
