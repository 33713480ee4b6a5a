"""`POST /api/simulate`: a transaction batch simulated by the App's simulator, with its fee quote."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from ...actors.app_actors import AppActors
from ...agent.errors import AppMismatch, InvalidInput, NotConfigured
from ...agent.simulation import Simulation, SimulationRequest, simulate
from ..auth import ApiKey, KeysDep, RuntimeDep, caller_app
from ..params import SESSION_HEADER, check_session_id, json_content
from ..schema import answers

router = APIRouter()


async def simulation_app(
    runtime: RuntimeDep,
    keys: KeysDep,
    key: ApiKey,
    x_session_id: Annotated[str | None, SESSION_HEADER] = None,
    app: str | None = None,
) -> AppActors:
    """The App of the session named in `X-Session-Id` if it exists, else the caller's (`CallerApp`)."""
    session_id = check_session_id(x_session_id) if x_session_id is not None else None
    owner = await runtime.owner(session_id) if session_id is not None else None
    if session_id is None or owner is None:
        return await caller_app(runtime, keys, key, app)
    if app is not None and app != owner.spec.name:
        raise AppMismatch.of(session_id, app)
    await keys.authorize(owner, key)
    return owner


@router.post(
    "/api/simulate",
    dependencies=[Depends(json_content)],
    response_model=None,
    responses=answers(dict[str, Simulation], 401, 403, 409, 415, 422, 501, 503),
)
async def simulate_batch(
    app: Annotated[AppActors, Depends(simulation_app)],
    body: Annotated[SimulationRequest | None, Body()] = None,
) -> dict[str, Any]:
    if app.spec.simulator is None:
        raise NotConfigured(
            f"The App {app.spec.name!r} simulates no transactions: its configuration names no simulator."
        )
    if body is None:
        raise InvalidInput('The body is missing; send {"transactions": [{"to": "0x...", "value": "0"}]}.')
    return {"result": (await simulate(app.spec.simulator, body)).model_dump(mode="json", by_alias=True)}
