"""GET /demo: a page to draw a digit and watch it go through the latent space.

Static files only (HTML, CSS, JavaScript and ten MNIST test digits); the page calls the
API from the browser like any client, so it needs no key itself and adds nothing to the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from service.errors import NotFound

STATIC = Path(__file__).resolve().parents[1] / "static" / "demo"
ASSETS = {"demo.css": "text/css", "demo.js": "text/javascript", "digits.json": "application/json"}
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate, so a new version of the service shows its new page

router = APIRouter(include_in_schema=False)


@router.api_route("/demo", methods=["GET", "HEAD"])
async def demo_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=NO_CACHE)


@router.api_route("/demo/{name}", methods=["GET", "HEAD"])
async def demo_asset(name: str) -> FileResponse:
    """Only the files listed in ASSETS: a name is never turned into an arbitrary path."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no demo file {name!r}", available=sorted(ASSETS))
    return FileResponse(STATIC / name, media_type=media_type, headers=NO_CACHE)
