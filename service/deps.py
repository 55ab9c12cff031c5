"""Dependencies: where a request's model, version and credentials are resolved, once.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop per dependency per request that cost more than the forward pass.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Query, Request

from service.catalog import Catalog, ServedModel
from service.errors import Unauthorized
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def served_model(
    request: Request,
    settings: SettingsDep,
    catalog: CatalogDep,
    model: Annotated[str | None, Query(description="Model name; default: the configured default model")] = None,
    version: Annotated[int | None, Query(ge=1, description="Version; default: the latest")] = None,
) -> ServedModel:
    served = catalog.resolve(model or settings.default_model, version)
    request.scope.setdefault("state", {})["model"] = served.name  # the metrics label
    return served


ModelDep = Annotated[ServedModel, Depends(served_model)]
FormatQuery = Annotated[str | None, Query(description="Output format, instead of the Accept header: json, png or raw")]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With AE_API_KEY set, every endpoint but health needs `Authorization: Bearer <key>`."""
    if settings.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.api_key.get_secret_value()
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <key>'",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
