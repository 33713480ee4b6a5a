"""The control routes of Aomi's client: the Apps a caller may use, an App's models, a session's model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...agent.errors import InvalidInput
from ..auth import CallerApp, ModelApp, Owner, RuntimeDep, VisibleApps
from ..params import ClientId, SessionId
from ..schema import ModelChosen, answers

router = APIRouter()


@router.get("/api/control/apps", response_model=None, responses=answers(list[str], 503))
async def control_apps(visible: VisibleApps, public_key: str | None = None) -> list[str]:
    return [a.spec.name for a in visible]


@router.get("/api/control/models", response_model=None, responses=answers(list[str], 401, 403, 503))
async def control_models(app: CallerApp) -> list[str]:
    # Aomi's client names no App here: the models are those of the App its key opens (a keyed App's are its own).
    return [m.label for m in app.spec.models]


@router.post("/api/control/model", response_model=None, responses=answers(ModelChosen, 401, 403, 409, 429, 503))
async def control_model(
    runtime: RuntimeDep,
    session_id: SessionId,
    app: ModelApp,
    owner: Owner,
    client_id: ClientId,
    rig: str | None = None,
) -> dict[str, Any]:
    if not rig:
        raise InvalidInput("rig is missing; send a model label or slug from GET /api/control/models.")
    if app.spec.model(rig) is None:
        offered = ", ".join(m.slug for m in app.spec.models)
        raise InvalidInput(f"Unknown model {rig!r}; the App {app.spec.name!r} offers: {offered}.")
    slug = await runtime.call(session_id, "set_model", rig, client_id, app=app, create=True)
    # `baml`: Aomi names the BAML client behind the model there; this runtime has none, so null, never a guess.
    return {"success": True, "rig": slug, "baml": None, "created": owner is None}
