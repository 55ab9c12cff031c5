"""Where a request's settings, model, version and credentials are resolved, once.

The `...Dep` dependencies serve FastAPI's ordinary routes; the inference routes (lean routes,
see service/lean.py) are guarded by `admit` and call `resolve_model` themselves. All are
`async def` although none awaits: FastAPI runs a plain `def` dependency in a worker thread, a hop
per request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import RouteContext

from service.core import Catalog, ServedModel
from service.errors import NotReady, Unauthorized, UnsupportedMediaType
from service.schemas import ModelQuery
from service.settings import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def catalog_of(request: Request) -> Catalog:
    """The loaded catalogue; NotReady before the lifespan has loaded it."""
    catalog: Catalog | None = request.app.state.catalog
    if catalog is None:
        raise NotReady("no model loaded yet")
    return catalog


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_catalog(request: Request) -> Catalog:
    return catalog_of(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def check_api_key(request: Request, settings: Settings) -> None:
    """With AE_API_KEY set, `Authorization: Bearer <key>`; which endpoints check it: README, "The API key"."""
    if settings.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.api_key.get_secret_value()
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    check_api_key(request, settings)


def admit(request: Request) -> None:
    """What an inference request must pass before its query or body is read (the lean routes' guard).

    The API key first, so that a request without it learns nothing else; then a body as sent: the
    service reads no content coding, and a gzipped body taken as raw pixels would be misread.
    """
    check_api_key(request, settings_of(request))
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("identity", "") and request.method == "POST":  # a GET's body is never read
        raise UnsupportedMediaType(f"content encoding {coding!r}: send the body uncompressed",
                                   headers={"Accept-Encoding": "identity"})  # fmt: skip


def needs_key(route: RouteContext) -> bool:
    """Whether `route` (as included in the app) checks the API key, when one is set; the OpenAPI document's
    security comes from here."""
    guard = getattr(route.original_route, "guard", None)
    return guard is admit or any(d.dependency is require_api_key for d in route.dependencies)


def resolve_model(request: Request, query: ModelQuery) -> ServedModel:
    """The requested model and version (default: the default model, latest).

    Unknown ones raise the core's UnknownModel or UnknownVersion, which service/errors.py makes 404s.
    """
    settings = settings_of(request)
    model = settings.default_model if query.model is None else query.model
    served = catalog_of(request).resolve(model, query.version)
    state = request.scope.setdefault("state", {})
    state["model"] = served.name  # the metrics label
    state["answered_by"] = served.answered_by  # X-Model and X-Model-Version, added by MetricsMiddleware
    return served
