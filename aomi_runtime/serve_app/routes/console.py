"""`GET /console`: the browser console, a page and its static files shipped in the package (`../console/`).

The page talks to the same public routes any client uses; it needs no network beyond this runtime. Only the
files in that folder are served, looked up by name in a table made at import, so no path reaches the disk.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ..schema import Answers, errors

router = APIRouter()

FOLDER = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
INDEX = "index.html"
# Scripts and styles from this runtime only (no inline script, no CDN), and calls to this runtime only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _assets() -> dict[str, tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), f"{MEDIA_TYPES[p.suffix]}; charset=utf-8")
        for p in sorted(FOLDER.iterdir())
        if p.suffix in MEDIA_TYPES and p.name != INDEX
    }


PAGE = (FOLDER / INDEX).read_bytes()
ASSETS = _assets()


def _answers(description: str, media_types: tuple[str, ...], *statuses: int) -> Answers:
    content = {m: {"schema": {"type": "string"}} for m in media_types}
    return {200: {"content": content, "description": description}, **errors(*statuses)}


@router.get("/console", response_class=Response, responses=_answers("The console's page.", ("text/html",)))
async def console_page() -> Response:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get(
    "/console/{name}",
    response_class=Response,
    # 422 described as ours: FastAPI would describe its own body for a route with a path parameter.
    responses=_answers("A script or style sheet of the console.", ("text/javascript", "text/css"), 404, 422),
)
async def console_asset(name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise HTTPException(404, f"The console has no file {name!r}; open /console.")
    body, media_type = asset
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)
