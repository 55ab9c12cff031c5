"""POST /encode, /decode, /reconstruct and GET/POST /latent-map."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from service.batcher import BatcherClosed, Outputs, QueueFull
from service.catalog import ServedModel
from service.codecs import json_response, output_format, raw_response, read_images, read_latents
from service.deps import FormatQuery, ModelDep, SettingsDep, require_api_key
from service.errors import ClientGone, Overloaded
from service.imaging import comparison_png, grid_png, scatter_png
from service.schemas import (
    ERRORS,
    IMAGES_BODY,
    LATENTS_BODY,
    DecodeResponse,
    EncodeResponse,
    LatentMapResponse,
    ReconstructResponse,
)

router = APIRouter(dependencies=[Depends(require_api_key)], responses=ERRORS, tags=["inference"])
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}, "application/octet-stream": {}}}}


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def infer(request: Request, served: ModelDep, kind: str, inputs: np.ndarray) -> Outputs:
    """Through the model's batcher; a client that disconnects meanwhile costs nothing more."""
    assert served.batcher is not None, "batchers start in the lifespan"
    work = asyncio.ensure_future(served.batcher.submit(kind, inputs))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not work.done():
        work.cancel()
        raise ClientGone("client disconnected while its request was queued")
    try:
        return work.result()
    except (QueueFull, BatcherClosed) as e:
        raise Overloaded(f"model {served.name} is busy ({e}); retry shortly", headers={"Retry-After": "1"}) from None


def png_response(data: bytes) -> Response:
    return Response(data, media_type="image/png")


@router.post("/encode", response_model=EncodeResponse, openapi_extra=IMAGES_BODY, responses=PNG)
async def encode(request: Request, served: ModelDep, settings: SettingsDep, format: FormatQuery = None) -> Response:
    """Images -> latent vectors of size p (JSON, or float32 bytes with Accept: application/octet-stream)."""
    fmt = output_format(request, format, ("json", "raw"))
    codes = (await infer(request, served, "images", await read_images(request, settings)))["codes"]
    if fmt == "raw":
        return raw_response(codes, pixels=False)
    return json_response({"model": served.name, "version": served.version, "latents": codes})


@router.post("/decode", response_model=DecodeResponse, openapi_extra=LATENTS_BODY, responses=PNG)
async def decode(request: Request, served: ModelDep, settings: SettingsDep, format: FormatQuery = None) -> Response:
    """Latent vectors -> images (JSON, a PNG grid, or uint8 bytes)."""
    fmt = output_format(request, format, ("json", "png", "raw"))
    latents = await read_latents(request, settings, served.latent_size)
    images = (await infer(request, served, "latents", latents))["images"]
    if fmt == "png":
        return png_response(await asyncio.to_thread(grid_png, images))
    if fmt == "raw":
        return raw_response(images, pixels=True)
    return json_response({"model": served.name, "version": served.version, "images": images})


@router.post("/reconstruct", response_model=ReconstructResponse, openapi_extra=IMAGES_BODY, responses=PNG)
async def reconstruct(
    request: Request, served: ModelDep, settings: SettingsDep, format: FormatQuery = None
) -> Response:
    """Images -> reconstructions and their MSE (JSON, a PNG of originals above reconstructions, or uint8 bytes)."""
    fmt = output_format(request, format, ("json", "png", "raw"))
    images = await read_images(request, settings)
    out = await infer(request, served, "images", images)
    if fmt == "png":
        return png_response(await asyncio.to_thread(comparison_png, images, out["images"]))
    if fmt == "raw":
        return raw_response(out["images"], pixels=True)
    return json_response(
        {"model": served.name, "version": served.version, "reconstructions": out["images"], "mse": out["mse"]}
    )


LimitQuery = Annotated[int | None, Query(ge=1, le=10_000, description="Test points on the map (default: setting)")]


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


@router.get("/latent-map", response_model=LatentMapResponse, responses=PNG)
async def latent_map(
    request: Request, served: ModelDep, settings: SettingsDep, limit: LimitQuery = None, format: FormatQuery = None
) -> Response:
    """The test set's latent codes on a 2-D map (p = 2 directly, p > 2 through the stored PCA), by digit."""
    fmt = output_format(request, format, ("json", "png"))
    return await _map_response(served, limit or settings.latent_map_limit, None, fmt)


@router.post("/latent-map", response_model=LatentMapResponse, openapi_extra=IMAGES_BODY, responses=PNG)
async def place_on_latent_map(
    request: Request, served: ModelDep, settings: SettingsDep, limit: LimitQuery = None, format: FormatQuery = None
) -> Response:
    """The same map, plus where the posted images land on it ('positions', in order)."""
    fmt = output_format(request, format, ("json", "png"))
    codes = (await infer(request, served, "images", await read_images(request, settings)))["codes"]
    return await _map_response(served, limit or settings.latent_map_limit, served.to_map(codes), fmt)
