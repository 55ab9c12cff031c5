"""POST /encode, /decode, /reconstruct and GET/POST /latent-map: lean routes (see service/lean.py).

Each translates: the request's query and body into a served model and input rows (deps, codecs),
those into a core call (`infer`: a `Pass` through the model's batcher), the outputs into a reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.responses import Response
from starlette.types import Receive

from service.codecs import OUTPUT_TYPES, json_response, output_format, raw_response, read_images, read_latents
from service.core import Outputs, Pass, ServedModel, as_unit_floats, check_decodable
from service.deps import admit, resolve_model, settings_of
from service.errors import ClientGone
from service.imaging import comparison_png, grid_png, scatter_png
from service.lean import LeanRoute
from service.schemas import (
    IMAGES_BODY,
    LATENTS_BODY,
    DecodeResponse,
    EncodeQuery,
    EncodeResponse,
    LatentMapResponse,
    MapQuery,
    ModelQuery,
    ReconstructResponse,
    binary,
    errors,
)


class InferenceRoute(LeanRoute):
    """A lean route guarded by `admit`: the API key, then the body's content coding, before anything is read."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, guard=admit, **kwargs)


router = APIRouter(route_class=InferenceRoute, tags=["inference"])
Params = Annotated[ModelQuery, Query()]
EncodeParams = Annotated[EncodeQuery, Query()]
MapParams = Annotated[MapQuery, Query()]
BODY_ERRORS = (400, 404, 406, 413, 415, 422, 503)
X_SHAPE = {"X-Shape": {"description": "rows,columns of a raw (application/octet-stream) reply",
                       "schema": {"type": "string", "pattern": "^[0-9]+,[0-9]+$"}}}  # fmt: skip
WATCH_AFTER = 0.01  # seconds a request waits for its forward pass before anyone watches for a hang-up
PIXELS_OUT = "N x 784 uint8 pixels (0-255), row-major"
DECODED_PNG = "The decoded digits in a grid"
COMPARISON_PNG = "The originals above their reconstructions"
MAP_PNG = "A scatter of the test digits' latent codes, coloured by digit"
# what /reconstruct's pass computes for each output format: MSEs for JSON only, uint8 pixels for raw
RECONSTRUCT_PASS = {"json": Pass.RECONSTRUCT_MSE, "png": Pass.RECONSTRUCT, "raw": Pass.RECONSTRUCT_PIXELS}


async def _cancel_on_hang_up(receive: Receive, work: asyncio.Future[Outputs]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    work.cancel()  # the batcher skips it: no forward pass for a client that left


async def infer(request: Request, served: ServedModel, what: Pass, inputs: np.ndarray) -> Outputs:
    """`what` over `inputs`, through the model's batcher; a client that disconnects meanwhile costs nothing more.

    Only a request still waiting after WATCH_AFTER seconds gets a task that watches for the
    client hanging up: most are answered sooner, and a task each would cost them all
    (BENCHMARKS.md, serving, step 11). A full queue raises the core's Overloaded (a 503); latents
    whose image overflowed, UndecodableLatents (a 422): checked here, on the way out of every
    decoding pass, REST's and the Open Inference Protocol's, so that only the request that sent them fails.
    """
    work = served.submit(what, inputs)
    watchers: list[asyncio.Task[None]] = []
    timer = asyncio.get_running_loop().call_later(
        WATCH_AFTER, lambda: watchers.append(asyncio.ensure_future(_cancel_on_hang_up(request.receive, work)))
    )
    try:
        outputs = await work
    except asyncio.CancelledError:
        if any(w.done() and not w.cancelled() for w in watchers):  # the client left, not a shutdown
            raise ClientGone("client disconnected while its request was queued") from None
        raise
    finally:
        timer.cancel()
        for watcher in watchers:
            watcher.cancel()
    return check_decodable(outputs, served.name) if what.takes_codes else outputs


def replies(query: type[ModelQuery], statuses: tuple[int, ...], **outputs: str) -> dict[int | str, dict[str, Any]]:
    """An endpoint's documented replies: its errors, and its 200 in each of its output formats besides JSON
    (`outputs`: format -> what that reply holds; exactly the query's `formats`, which the endpoint serves)."""
    if {"json", *outputs} != set(query.formats):
        raise ValueError(f"{query.__name__} serves {query.formats}; documented: json, {', '.join(outputs)}")
    ok: dict[str, Any] = {"content": {OUTPUT_TYPES[fmt]: binary(what) for fmt, what in outputs.items()}}
    if "raw" in outputs:
        ok["headers"] = X_SHAPE
    return {200: ok, **errors(*statuses)}


def png_response(data: bytes) -> Response:
    return Response(data, media_type="image/png")


@router.post("/encode", response_model=EncodeResponse, openapi_extra=IMAGES_BODY,
             responses=replies(EncodeQuery, BODY_ERRORS, raw="N x p little-endian float32 latents"))  # fmt: skip
async def encode(request: Request, query: EncodeParams) -> Response:
    """Images -> latent vectors of size p (JSON, or float32 bytes with Accept: application/octet-stream)."""
    served = resolve_model(request, query)
    fmt = output_format(request, query.format, query.formats)
    codes = (await infer(request, served, Pass.ENCODE, await read_images(request, settings_of(request))))["codes"]
    if fmt == "raw":
        return raw_response(codes)
    return json_response({"model": served.name, "version": served.version, "latents": codes})


@router.post("/decode", response_model=DecodeResponse, openapi_extra=LATENTS_BODY,
             responses=replies(ModelQuery, BODY_ERRORS, png=DECODED_PNG, raw=PIXELS_OUT))  # fmt: skip
async def decode(request: Request, query: Params) -> Response:
    """Latent vectors -> images (JSON, a PNG grid, or uint8 bytes)."""
    served = resolve_model(request, query)
    fmt = output_format(request, query.format, query.formats)
    latents = await read_latents(request, settings_of(request), served.latent_size)
    decoded = await infer(request, served, Pass.DECODE_PIXELS if fmt == "raw" else Pass.DECODE, latents)
    images = decoded["images"]
    if fmt == "png":
        return png_response(await asyncio.to_thread(grid_png, images))
    if fmt == "raw":
        return raw_response(images)
    return json_response({"model": served.name, "version": served.version, "images": images})


@router.post("/reconstruct", response_model=ReconstructResponse, openapi_extra=IMAGES_BODY,
             responses=replies(ModelQuery, BODY_ERRORS, png=COMPARISON_PNG, raw=PIXELS_OUT))  # fmt: skip
async def reconstruct(request: Request, query: Params) -> Response:
    """Images -> reconstructions and their MSE (JSON, a PNG of originals above reconstructions, or uint8 bytes)."""
    served = resolve_model(request, query)
    fmt = output_format(request, query.format, query.formats)
    images = await read_images(request, settings_of(request))
    out = await infer(request, served, RECONSTRUCT_PASS[fmt], images)
    if fmt == "png":
        return png_response(await asyncio.to_thread(comparison_png, as_unit_floats(images), out["images"]))
    if fmt == "raw":
        return raw_response(out["images"])
    return json_response(
        {"model": served.name, "version": served.version, "reconstructions": out["images"], "mse": out["mse"]}
    )


def _map_png(served: ServedModel, limit: int, positions: np.ndarray | None) -> bytes:
    title = f"{served.name} v{served.version}: {min(limit, len(served.map_points))} test digits"
    return scatter_png(served.map_points[:limit], served.map_labels[:limit], positions, title=title)


def _map_json(served: ServedModel, limit: int, positions: np.ndarray | None) -> Response:
    points, labels = served.map_points[:limit].round(4).tolist(), served.map_labels[:limit].tolist()
    content: dict[str, object] = {
        "model": served.name,
        "version": served.version,
        "projection": "identity" if served.latent_size == 2 else "pca",
        "points": [{"x": x, "y": y, "label": label} for (x, y), label in zip(points, labels, strict=True)],
    }
    if positions is not None:
        content["positions"] = [{"x": x, "y": y} for x, y in positions.round(4).tolist()]
    return json_response(content)


async def _map_response(served: ServedModel, limit: int, positions: np.ndarray | None, fmt: str) -> Response:
    if fmt == "png":
        return png_response(await asyncio.to_thread(_map_png, served, limit, positions))
    return _map_json(served, limit, positions)


@router.get("/latent-map", response_model=LatentMapResponse,
            responses=replies(MapQuery, (404, 406, 422, 503), png=MAP_PNG))  # fmt: skip
async def latent_map(request: Request, query: MapParams) -> Response:
    """The test set's latent codes on a 2-D map (p = 2 directly, p > 2 through the stored PCA), by digit."""
    served = resolve_model(request, query)
    fmt = output_format(request, query.format, query.formats)
    return await _map_response(served, query.limit or settings_of(request).latent_map_limit, None, fmt)


@router.post("/latent-map", response_model=LatentMapResponse, openapi_extra=IMAGES_BODY,
             responses=replies(MapQuery, BODY_ERRORS, png=MAP_PNG + "; the posted images as stars"))  # fmt: skip
async def place_on_latent_map(request: Request, query: MapParams) -> Response:
    """The same map, plus where the posted images land on it ('positions', in order)."""
    served = resolve_model(request, query)
    fmt = output_format(request, query.format, query.formats)
    settings = settings_of(request)
    codes = (await infer(request, served, Pass.ENCODE, await read_images(request, settings)))["codes"]
    return await _map_response(served, query.limit or settings.latent_map_limit, served.to_map(codes), fmt)
