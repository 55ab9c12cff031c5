"""GET /docs (Swagger UI) and /redoc (ReDoc), their scripts and styles served by the service itself,
and the OpenAPI document they show (`document`).

FastAPI's own pages load them from a CDN, so they stay blank where there is no internet. Here
they come from the `fastapi-offline` package, which bundles both; only the files in ASSETS are
served, each by a route of its own. Their URLs carry the package's version, so a browser may keep
the files until an upgrade changes them.

These pages and /openapi.json are open without the API key, deliberately: they are the same for
every caller and tell only what the README does (the endpoints, their parameters and bodies,
whether a key is needed, the default model's latent size in /decode's example), never what the
store holds; the calls made from them need the key, which Swagger UI's "Authorize" sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import FileResponse, HTMLResponse

from models import UnknownConfigError, get_config
from service.deps import needs_key
from service.schemas import ERROR_STATUSES, latents_examples
from service.settings import Settings

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
SCHEME = "bearer"  # the API key's security scheme in the document, when there is a key
ERROR_REPLY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
UNAUTHORIZED = {"description": ERROR_STATUSES[401], "content": ERROR_REPLY}

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


def document(app: FastAPI, settings: Settings) -> Callable[[], dict[str, Any]]:
    """`app.openapi`: FastAPI's document, completed once with what depends on the settings.

    /decode's JSON example is for the default model's latent size (from its configuration in the
    registry; none for a default outside it), so that "Try it out" works as it stands. With an API
    key, a bearer security scheme, applied with its 401 to exactly the operations that check the
    key (deps.needs_key); without one, neither.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = FastAPI.openapi(app)  # builds and keeps it; completed in place
            try:
                latent_size = get_config(settings.default_model).latent_size
            except UnknownConfigError:
                pass
            else:
                spec["paths"]["/decode"]["post"]["requestBody"]["content"]["application/json"]["examples"] = (
                    latents_examples(latent_size)
                )
            if settings.api_key is not None:
                _secure(spec, app)
            return spec
        return app.openapi_schema

    return openapi


def _secure(spec: dict[str, Any], app: FastAPI) -> None:
    spec["components"]["securitySchemes"] = {SCHEME: {"type": "http", "scheme": "bearer",
                                                      "description": "The service's API key (AE_API_KEY)"}}  # fmt: skip
    for route in iter_route_contexts(app.routes):  # through FastAPI's included routers, as its document is made
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and needs_key(route):
            for method in route.methods or ():
                operation = spec["paths"][route.path_format][method.lower()]
                operation["security"] = [{SCHEME: []}]
                operation["responses"] = dict(sorted({**operation["responses"], "401": UNAUTHORIZED}.items()))
