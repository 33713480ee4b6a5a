"""Bring your own provider key: a client's own key for a model provider, which its sessions' turns then call that
provider with instead of the operator's. Kept as the client's secret `PROVIDER_KEY:<provider>`, as Aomi's widget
keeps it; the client is the one the session in `X-Session-Id` is bound to (its `client_id`), or `client_id` sent.
Control routes: a keyed App's key is needed, as for its secrets (a session's id alone would otherwise choose the key
its client's turns call the provider with).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from ...actors.app_actors import AppActors
from ...agent.errors import InvalidInput, SessionNotFound
from ...agent.records import SessionRecord
from ...agent.secrets import (
    CLIENT_KEY_PROVIDERS,
    MAX_SECRET_BYTES,
    PROVIDER_KEY_PREFIX,
    check_secret,
    provider_key_name,
)
from ...backends.secrets import SecretInfo
from ..auth import OwnAppKeyed
from ..params import ClientId, SessionId, json_content
from ..schema import ProviderKeys, ProviderKeySet, SessionDeleted, answers

router = APIRouter()

MAX_LABEL_CHARS = 200


class SetProviderKey(BaseModel):
    # Optional here so that a missing field answers our 400, not FastAPI's 422; required in the schema.
    model_config = ConfigDict(json_schema_extra={"required": ["provider", "api_key"]})

    provider: Annotated[str | None, Field(json_schema_extra={"enum": list(CLIENT_KEY_PROVIDERS)})] = None
    api_key: Annotated[str | None, Field(min_length=1, max_length=MAX_SECRET_BYTES)] = None
    label: Annotated[str | None, Field(max_length=MAX_LABEL_CHARS)] = None


async def _session(app: AppActors, session_id: str, client_id: str | None) -> tuple[SessionRecord, str]:
    """The session's record and the client whose keys it uses: `client_id` if sent, else the session's own."""
    record: SessionRecord | None = await app.store.get.remote(app.spec.name, session_id)
    if record is None:
        raise SessionNotFound(f"No session {session_id!r} exists.")
    client_id = client_id or record.client_id
    if not client_id:
        raise InvalidInput(
            "This session is bound to no client: send client_id (here, or on chat, state or control/model) first; "
            "provider keys belong to a client."
        )
    return record, client_id


def _shown(app: AppActors, record: SessionRecord, info: SecretInfo) -> dict[str, Any]:
    provider = info.name.removeprefix(PROVIDER_KEY_PREFIX)
    model = app.spec.model(record.model)
    active = model is not None and model.client_key_provider == provider
    return {"provider": provider, "key_prefix": info.prefix, "label": info.label, "is_active": active}


KEYS = "/api/control/provider-keys"


@router.get(KEYS, response_model=None, responses=answers(ProviderKeys, 401, 403, 404, 503))
async def list_provider_keys(app: OwnAppKeyed, session_id: SessionId, client_id: ClientId) -> dict[str, Any]:
    record, client = await _session(app, session_id, client_id)
    found: list[SecretInfo] = await app.store.describe_secrets.remote(client, PROVIDER_KEY_PREFIX)
    return {"provider_keys": [_shown(app, record, i) for i in found]}


@router.post(
    KEYS,
    dependencies=[Depends(json_content)],
    response_model=None,
    responses=answers(ProviderKeySet, 401, 403, 404, 415, 422, 429, 503),
)
async def set_provider_key(
    app: OwnAppKeyed,
    session_id: SessionId,
    client_id: ClientId,
    body: Annotated[SetProviderKey | None, Body()] = None,
) -> dict[str, Any]:
    body = body or SetProviderKey()
    if not body.provider or not body.api_key:
        raise InvalidInput('provider or api_key is missing; send {"provider": "openai", "api_key": "..."}.')
    name = provider_key_name(body.provider)
    check_secret(name, body.api_key)
    record, client = await _session(app, session_id, client_id)
    await app.store.put_secrets.remote(client, {name: body.api_key}, body.label or "")
    found: list[SecretInfo] = await app.store.describe_secrets.remote(client, name)
    return {"key": _shown(app, record, next(i for i in found if i.name == name))}


@router.delete(f"{KEYS}/{{provider}}", response_model=None, responses=answers(SessionDeleted, 401, 403, 404, 503))
async def delete_provider_key(
    app: OwnAppKeyed, session_id: SessionId, provider: str, client_id: ClientId
) -> dict[str, Any]:
    name = provider_key_name(provider)
    _, client = await _session(app, session_id, client_id)
    return {"deleted": await app.store.delete_secrets.remote(client, name) > 0}
