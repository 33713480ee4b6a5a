"""Client secrets, as Aomi's widget sets them: values a client's sessions' tools read by name, never shown again.

They belong to (App, client_id): the App is the caller's (`CallerApp`), the client the one named. The client id is
the capability, as a session's id is: the widget makes it a random UUID. No route returns a value.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from ...agent.errors import InvalidInput
from ...agent.secrets import HANDLE_PREFIX, MAX_SECRET_BYTES, MAX_SECRETS_PER_CLIENT, SECRET_NAME_PATTERN, check_secret
from ..auth import CallerApp
from ..params import check_id, json_content
from ..schema import SESSION_ID_SCHEMA, SecretHandles, SecretsCleared, SessionDeleted, answers

router = APIRouter()

NAME_SCHEMA = {"pattern": f"^{SECRET_NAME_PATTERN.pattern}$"}


class SetSecrets(BaseModel):
    # Optional here so that a missing field answers our 400, not FastAPI's 422; required in the schema.
    model_config = ConfigDict(json_schema_extra={"required": ["client_id", "secrets"]})

    client_id: Annotated[str | None, Field(json_schema_extra=SESSION_ID_SCHEMA)] = None
    secrets: Annotated[
        dict[str, Annotated[str, Field(min_length=1, max_length=MAX_SECRET_BYTES)]] | None,
        Field(json_schema_extra={"propertyNames": NAME_SCHEMA, "maxProperties": MAX_SECRETS_PER_CLIENT}),
    ] = None


def client(client_id: str | None) -> str:
    if not client_id:
        raise InvalidInput("client_id is missing; send the id the client's secrets are kept under.")
    return check_id(client_id, "client_id")


ClientIdQuery = Annotated[str | None, Field(json_schema_extra=SESSION_ID_SCHEMA)]
SET = answers(SecretHandles, 401, 403, 413, 415, 422, 429, 503)


@router.post("/api/secrets", dependencies=[Depends(json_content)], response_model=None, responses=SET)
async def set_secrets(app: CallerApp, body: Annotated[SetSecrets | None, Body()] = None) -> dict[str, Any]:
    body = body or SetSecrets()
    client_id = client(body.client_id)
    if not body.secrets:
        raise InvalidInput('secrets is missing or empty; send {"client_id": ..., "secrets": {"NAME": "value"}}.')
    for name, value in body.secrets.items():
        check_secret(name, value)
    await app.store.put_secrets.remote(client_id, body.secrets)
    return {"handles": {name: HANDLE_PREFIX + name for name in body.secrets}}


@router.delete("/api/secrets", response_model=None, responses=answers(SecretsCleared, 401, 403, 503))
async def clear_secrets(app: CallerApp, client_id: str | None = None) -> dict[str, Any]:
    return {"cleared": await app.store.delete_secrets.remote(client(client_id))}


@router.delete("/api/secrets/{name}", response_model=None, responses=answers(SessionDeleted, 401, 403, 503))
async def delete_secret(
    app: CallerApp, name: Annotated[str, Path(json_schema_extra=NAME_SCHEMA)], client_id: str | None = None
) -> dict[str, Any]:
    check_secret(name)
    return {"deleted": await app.store.delete_secrets.remote(client(client_id), name) > 0}
