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
    """Every served model: its versions, which ones `stable` and `latest` name, and the stable one's metrics;
    and the limits of one request, for clients that split large jobs."""
    summaries = []
    for name in catalog.names():
        aliases = catalog.aliases(name)
        stable = catalog.resolve(name, aliases["stable"]).summary()
        summaries.append(
            {
                "name": name,
                "versions": catalog.versions(name),
                "stable": aliases["stable"],
                "latest": aliases["latest"],
                "latent_size": stable["latent_size"],
                "parameters": stable["parameters"],
                "metrics": stable["metrics"],
            }
        )
    limits = {"max_images_per_request": settings.max_images_per_request, "max_body_bytes": settings.max_body_bytes}
    return json_response({"default_model": settings.default_model, "models": summaries, "limits": limits})


@router.get("/models/{name}", response_model=ModelDetail, responses=errors(404, 422, 503))
async def model_detail(name: ModelName, catalog: CatalogDep) -> Response:
    """One model: every served version with its architecture, recipe, metrics and training time."""
    versions = [catalog.resolve(name, version).summary() for version in catalog.versions(name)]
    return json_response({"name": name, **catalog.aliases(name), "versions": versions})
