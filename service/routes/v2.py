"""The Open Inference Protocol (KServe V2) with Triton's binary tensor extension: health, metadata, inference.

Translates as the REST routes do, onto the same core: the path names a served model version,
the body (service/oip/parsing.py) becomes input rows and the outputs asked for, those one forward
pass (service/oip/mapping.py) through the model's batcher by the REST routes' `infer`
(hang-up watching, the 503 of a full queue), with the same body and image limits. The model
configuration, statistics and repository extensions are in v2_extensions.py; `install` puts all
of them on the app.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import BaseRoute

from service.budget import offload_of, parse_on_loop
from service.codecs import json_response, read_body
from service.deps import catalog_of, check_api_key, settings_of
from service.errors import NotFound
from service.oip.http import InferLane, Params, V2Route, decompressed, empty, served_model
from service.oip.mapping import plan, results
from service.oip.metadata import model_metadata, server_metadata
from service.oip.parsing import parse_request
from service.oip.stats import RequestStats
from service.oip.tensors import HEADER_LENGTH, InferRequest, infer_response
from service.routes import v2_extensions
from service.routes.inference import infer

# Not in this service's OpenAPI document: the protocol has its own specification (KServe's
# open_inference_rest.yaml), which clients and platforms of the protocol follow; README says which parts.
router = APIRouter(route_class=V2Route, include_in_schema=False)
MODEL = "/v2/models/{name}"
VERSION = "/v2/models/{name}/versions/{version}"


@router.post(MODEL + "/infer")
@router.post(VERSION + "/infer")
async def v2_infer(request: Request, query: Params) -> Response:
    """Inference: a JSON request, or with Inference-Header-Content-Length a JSON header and binary tensors."""
    started = time.monotonic_ns()
    served = served_model(request)
    stats: RequestStats = request.app.state.v2_stats
    try:
        settings, headers = settings_of(request), request.headers
        binary = HEADER_LENGTH in headers  # else all JSON: held to the JSON limit, as REST's JSON bodies
        limit = settings.max_body_bytes if binary else min(settings.max_json_bytes, settings.max_body_bytes)
        setting = "AE_MAX_JSON_BYTES, for JSON bodies" if limit < settings.max_body_bytes else "AE_MAX_BODY_BYTES"
        body = await read_body(request, limit, setting)
        encoding = headers.get("content-encoding")
        if encoding is None and parse_on_loop(body, multipart=False):
            parsed = parse_request(body, headers.get(HEADER_LENGTH))
        else:  # a large or compressed body is read in a decode thread: it would hold the event loop
            unpack = offload_of(request, settings).run(_unpack, body, encoding, limit, headers.get(HEADER_LENGTH))
            parsed = await unpack
        todo = plan(parsed, served.latent_size, settings.max_images_per_request)
        outputs = results(todo, await infer(request, served, todo.what, todo.rows))
    except Exception:
        stats.record(served, False, started)
        raise
    stats.record(served, True, started)
    return infer_response(served.name, served.version, parsed.id, outputs)


def _unpack(body: bytes, encoding: str | None, limit: int, header_length: str | None) -> InferRequest:
    return parse_request(decompressed(body, encoding, limit), header_length)


@router.get("/v2")
async def v2_server_metadata(request: Request, query: Params) -> Response:
    """Server metadata: name, version, the protocol extensions supported."""
    check_api_key(request, settings_of(request))
    return json_response(server_metadata(request.app.version))


@router.get("/v2/health/live")
async def v2_live(request: Request, query: Params) -> Response:
    """200 while the process answers."""
    return empty()


@router.get("/v2/health/ready")
async def v2_ready(request: Request, query: Params) -> Response:
    """200 when /readyz would be: models loaded, at least one, not shutting down; else 400 (the spec's 4xx)."""
    return empty(200 if _ready(request) else 400)


def _ready(request: Request) -> bool:
    catalog = request.app.state.catalog
    return catalog is not None and not catalog.closing and not request.app.state.draining and len(catalog) > 0


@router.get(MODEL)
@router.get(VERSION)
async def v2_model_metadata(request: Request, query: Params) -> Response:
    """Model metadata: versions, inputs and outputs (-1: the batch); `parameters` adds the aliases and the mapping."""
    served = served_model(request)
    catalog = catalog_of(request)
    return json_response(model_metadata(served, catalog.versions(served.name), catalog.aliases(served.name)))


@router.get(MODEL + "/ready")
@router.get(VERSION + "/ready")
async def v2_model_ready(request: Request, query: Params) -> Response:
    """200 if the version is served and the server is not shutting down; 404 if there is no such model or version."""
    served_model(request)
    return empty(200 if _ready(request) else 400)


async def v2_no_such_endpoint(request: Request, query: Params) -> Response:
    raise NotFound(f"no such endpoint: {request.method} {request.url.path} (GET /v2 lists the extensions supported)")


def _precedence(route: BaseRoute) -> int:
    """Inference first (the router tries routes in turn), then fixed paths: /v2/models/stats is no model's metadata."""
    path = getattr(route, "path", "")
    return 0 if path.endswith("/infer") else 1 if "{" not in path else 2


def install(app: FastAPI) -> None:
    """The protocol's routes ahead of the app's others, and its request statistics."""
    catch_all = V2Route("/v2/{path:path}", v2_no_such_endpoint, methods=["GET", "POST"], include_in_schema=False)
    routes = sorted([*router.routes, *v2_extensions.router.routes], key=_precedence)
    app.router.routes[:0] = [*routes, catch_all]
    infer_routes = [route for route in routes if isinstance(route, V2Route) and route.path.endswith("/infer")]
    app.user_middleware.append(Middleware(InferLane, routes=infer_routes))  # the innermost: inside metrics
    app.state.v2_stats = RequestStats()
