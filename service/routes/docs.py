"""GET /docs (Swagger UI) and /redoc (ReDoc), their scripts and styles served by the service itself.

FastAPI's own pages load them from a CDN, so they stay blank where there is no internet. Here
they come from the `fastapi-offline` package, which bundles both; only the files in ASSETS are
served, each by a route of its own. Their URLs carry the package's version, so a browser may keep
the files until an upgrade changes them. As FastAPI's pages were, these are open without the API
key (the calls made from them need it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata, resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import FileResponse, HTMLResponse

PACKAGE = "fastapi-offline"
STATIC = Path(str(resources.files("fastapi_offline") / "static"))
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_PATH = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# ReDoc's menu ends in a link to Redocly with a logo from their CDN, hidden when it fails to load:
# the browser is told not to try, so that the page asks for nothing outside the service.
REDOC_IMAGES = "img-src 'self' data:"
CACHE = {"Cache-Control": "public, max-age=31536000, immutable"}  # the URL changes with the files

router = APIRouter(include_in_schema=False)


def _url(request: Request, path: str) -> str:
    """`path` under the root path that a proxy may mount the app at, as FastAPI's own pages do."""
    return f"{request.scope.get('root_path', '')}{path}"


def _asset(request: Request, name: str) -> str:
    return _url(request, f"{ASSET_PATH}/{name}?v={metadata.version(PACKAGE)}")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_url(request, request.app.openapi_url),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset(request, "swagger-ui.css"),
        swagger_favicon_url=_asset(request, "favicon.png"),
        oauth2_redirect_url=_url(request, OAUTH2_REDIRECT),
        init_oauth=request.app.swagger_ui_init_oauth,
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=_url(request, request.app.openapi_url),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset(request, "favicon.png"),
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_IMAGES
    return page


def _serve(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def asset() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers=CACHE)

    return asset


# One route per file: a name in a URL is never turned into a path, and any other name is a 404.
for _name, _media_type in ASSETS.items():
    router.add_api_route(f"{ASSET_PATH}/{_name}", _serve(STATIC / _name, _media_type), methods=["GET", "HEAD"])
