"""GET /models and /models/{name}: what is served, with training metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from service.codecs import json_response
from service.deps import CatalogDep, SettingsDep, require_api_key
from service.schemas import ModelDetail, ModelList, ModelName, errors

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["models"])


@router.get("/models", response_model=ModelList, responses=errors(503))
async def list_models(catalog: CatalogDep, settings: SettingsDep) -> Response:
    """Every served model: its versions, latent size, parameters and the latest version's metrics."""
    summaries = []
    for name in catalog.names():
        latest = catalog.resolve(name, None).summary()
        summaries.append(
            {
                "name": name,
                "versions": catalog.versions(name),
                "latest": latest["version"],
                "latent_size": latest["latent_size"],
                "parameters": latest["parameters"],
                "metrics": latest["metrics"],
            }
        )
    return json_response({"default_model": settings.default_model, "models": summaries})


@router.get("/models/{name}", response_model=ModelDetail, responses=errors(404, 422, 503))
async def model_detail(name: ModelName, catalog: CatalogDep) -> Response:
    """One model: every served version with its architecture, recipe, metrics and training time."""
    versions = [catalog.resolve(name, version).summary() for version in catalog.versions(name)]
    return json_response({"name": name, "versions": versions})
