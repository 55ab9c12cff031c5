"""The protocol's extensions that Triton's tools use: model configuration, statistics, the model repository.

The repository extension follows the service's store rather than commanding it: the store decides
what is served (service/core/catalog.py), so `index` lists its versions as READY (served) or
UNAVAILABLE (with the reason), `load` re-reads the store now (what the service does by itself on
changes and every AE_RELOAD_INTERVAL seconds) and reports what is served, and `unload` is refused.
All of them, like every V2 endpoint but health, need the API key when one is set.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.codecs import json_response, read_body
from service.core import Catalog
from service.deps import catalog_of, check_api_key, settings_of
from service.oip.errors import BadRequest
from service.oip.http import Params, V2Route, served_model
from service.oip.metadata import model_config

router = APIRouter(route_class=V2Route, include_in_schema=False)  # as routes/v2.py's
MODEL = "/v2/models/{name}"
VERSION = "/v2/models/{name}/versions/{version}"
REQUEST_LIMIT = 64 * 1024  # bytes of a repository request's JSON (tritonclient sends a few)


@router.get(MODEL + "/config")
@router.get(VERSION + "/config")
async def v2_model_config(request: Request, query: Params) -> Response:
    """Triton's model configuration, with the service's real batching (see service/oip/metadata.py)."""
    served = served_model(request)
    catalog = catalog_of(request)
    runtime, settings = catalog.runtime, settings_of(request)
    return json_response(model_config(served, catalog.versions(served.name), runtime.batching, runtime.device,
                                      settings.max_images_per_request))  # fmt: skip


@router.get("/v2/models/stats")
async def v2_all_stats(request: Request, query: Params) -> Response:
    """Statistics of every served version (see service/oip/stats.py)."""
    check_api_key(request, settings_of(request))
    return _stats(request, list(catalog_of(request)))


@router.get(MODEL + "/stats")
@router.get(VERSION + "/stats")
async def v2_model_stats(request: Request, query: Params) -> Response:
    """Statistics of one version, or without a version of every served version of the model."""
    served = served_model(request)
    if "version" in request.path_params:
        return _stats(request, [served])
    catalog = catalog_of(request)
    return _stats(request, [catalog.resolve(served.name, v) for v in catalog.versions(served.name)])


def _stats(request: Request, versions: list[Any]) -> Response:
    return json_response(request.app.state.v2_stats.model_stats(versions, request.app.state.metrics))


@router.post("/v2/repository/index")
async def v2_repository_index(request: Request, query: Params) -> Response:
    """Every version in the store: READY if served, else UNAVAILABLE with the reason; `{"ready": true}`: READY only."""
    check_api_key(request, settings_of(request))
    options = await _options(request, {"ready"})
    ready_only = options.get("ready", False)
    if not isinstance(ready_only, bool):
        raise BadRequest("'ready' must be true or false")
    catalog = catalog_of(request)
    index = [entry for entry in _index(catalog) if entry["state"] == "READY" or not ready_only]
    return Response(orjson.dumps(index), media_type="application/json")


def _index(catalog: Catalog) -> list[dict[str, str]]:
    served = {name: set(catalog.versions(name)) for name in catalog.names()}
    limit = catalog.max_versions
    entries = []
    for name in catalog.store.names():
        for version in catalog.store.versions(name):
            entry = {"name": name, "version": str(version), "state": "READY"}
            if version not in served.get(name, ()):
                why = catalog.skipped.get(f"{name}/{version}") or (
                    f"not loaded: at most {limit} versions a model are (the stable one and the newest), and a new "
                    "version is loaded once the store is re-read")  # fmt: skip
                entry |= {"state": "UNAVAILABLE", "reason": why}
            entries.append(entry)
    return entries


@router.post("/v2/repository/models/{name}/load")
async def v2_repository_load(request: Request, query: Params) -> Response:
    """Re-read the store now (the service also does on its own), then report what is served of the model."""
    check_api_key(request, settings_of(request))
    await _options(request, set())  # a config or files to load from would not come from the store: refused
    catalog = catalog_of(request)
    name = request.path_params["name"]
    changed = await catalog.refresh()
    problems = {entry: why for entry, why in catalog.skipped.items() if entry.split("/")[0] == name}
    if name not in catalog.names() and problems:
        raise BadRequest(f"failed to load {name!r}: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    versions = catalog.versions(name)  # an unknown model: 404
    return json_response({"name": name, "versions": versions, **catalog.aliases(name), "changed": changed,
                          "skipped": problems})  # fmt: skip


@router.post("/v2/repository/models/{name}/unload")
async def v2_repository_unload(request: Request, query: Params) -> Response:
    """Refused: the store decides what is served. Remove the version from the store, or move its alias."""
    check_api_key(request, settings_of(request))
    raise BadRequest("unload is not supported: the store decides what is served (the service follows it); remove "
                     "the version from the store, or point the stable alias elsewhere (ae-models promote)")  # fmt: skip


async def _options(request: Request, known: set[str]) -> dict[str, Any]:
    """A repository request's optional JSON object; keys but `known` (and an empty `parameters`) refused."""
    body = await read_body(request, REQUEST_LIMIT)
    if not body.strip():
        return {}
    try:
        options = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"malformed JSON: {e}") from None
    if not isinstance(options, dict):
        raise BadRequest("the request must be a JSON object")
    for key, value in options.items():
        if key not in known and not (key == "parameters" and value == {}):
            why = ": a model's files and configuration come from the store" if key == "parameters" else ""
            raise BadRequest(f"{key!r} is not supported here{why}")
    return options
