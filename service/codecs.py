"""Request bodies in (JSON, multipart PNG, base64 PNG, raw bytes) and responses out.

Parsing is the expensive part of serving a model this small, so JSON goes through
orjson straight into numpy, and raw uint8 bytes skip parsing altogether. A large body is parsed,
and images are decoded, in the decode threads under a budget per request (service.budget).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from models.images import PIXELS, SIDE
from service.budget import Encoded, decode, decode_here, offload_of, parse_on_loop
from service.errors import BadInput, MalformedBody, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from service.forms import form_files
from service.settings import Settings

IMAGE_SHAPES = ((PIXELS,), (SIDE, SIDE))
IMAGE_TYPES = ("application/json", "multipart/form-data", "application/octet-stream", "image/png", "image/jpeg")
LATENT_TYPES = ("application/json", "application/octet-stream")
OUTPUT_TYPES = {"json": "application/json", "png": "image/png", "raw": "application/octet-stream"}


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _accepted_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The request's media type if it is one of `accepted`; otherwise a 415 saying what was wrong with it."""
    kind = content_type(request)
    if kind in accepted:
        return kind
    header = request.headers.get("content-type", "").strip()
    if not header:
        problem = "content type missing"
    elif "/" not in kind:
        problem = f"malformed content type {header!r} (expected type/subtype)"
    else:
        problem = f"content type {kind!r}"
    raise UnsupportedMediaType(f"{problem}; send one of: {', '.join(accepted)}")


async def read_body(request: Request, limit: int, setting: str = "AE_MAX_BODY_BYTES") -> bytes:
    """The whole body, refusing more than `limit` bytes (the `setting`) before and while reading it.

    Straight from the ASGI receive channel: Request.stream()'s generator costs more per request
    than the rest of reading a one-image body.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes ({setting})", limit=limit)
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes ({setting})", limit=limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_body_of(request: Request, kind: str, settings: Settings) -> bytes:
    """The body, under the limit for its kind: JSON's is lower, parsing it holds the GIL (service.budget)."""
    if kind == "application/json" and settings.max_json_bytes < settings.max_body_bytes:
        return await read_body(request, settings.max_json_bytes, "AE_MAX_JSON_BYTES, for JSON bodies")
    return await read_body(request, settings.max_body_bytes)


def _parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedBody("empty body: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedBody(f"malformed JSON: {e}") from None


def _check_count(count: int, settings: Settings, what: str = "images") -> None:
    if count == 0:
        raise BadInput(f"empty batch: send at least one of {what}")
    if count > settings.max_images_per_request:
        raise PayloadTooLarge(
            f"{count} {what} in one request; the limit is {settings.max_images_per_request}",
            limit=settings.max_images_per_request,
        )


def _rows(values: Any, shapes: tuple[tuple[int, ...], ...], what: str, expected: str) -> np.ndarray:
    """A list of rows, each of one of `shapes` -> (N, width) float32; a bad row is named by its index."""
    if not isinstance(values, list):
        raise BadInput(f"'{what}' must be a list")
    try:
        array: np.ndarray | None = np.asarray(values)
    except ValueError:  # ragged
        array = None
    if array is None or array.dtype.kind not in "fiu" or array.shape[1:] not in shapes:
        # the slow path: find the row that does not fit, or accept a mix of allowed shapes
        array = np.stack([_row(row, index, shapes, what, expected) for index, row in enumerate(values)])
    flat = array.reshape(len(array), -1)
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes infinite: _check_finite says so
        rows = flat.astype(np.float32)
    return _check_finite(rows, what, flat)


def _row(row: Any, index: int, shapes: tuple[tuple[int, ...], ...], what: str, expected: str) -> np.ndarray:
    try:
        item = np.asarray(row)
    except ValueError:
        item = np.empty(0, dtype=object)
    if item.dtype.kind not in "fiu":
        raise BadInput(f"{what}[{index}] must hold numbers only", index=index)
    if item.shape not in shapes:
        raise BadInput(f"{what}[{index}] has shape {list(item.shape)}; expected {expected}", index=index)
    return item.reshape(-1)


def _check_finite(array: np.ndarray, what: str, given: np.ndarray | None = None) -> np.ndarray:
    """`array` (float32) if every value is finite; `given`: the values before they were cast to float32."""
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        if given is not None and np.isfinite(given[index]).all():  # finite as sent, infinite as float32
            raise BadInput(f"{what}[{index}] has a value outside float32's range (about ±3.4e38)", index=index)
        raise BadInput(f"{what}[{index}] contains NaN or infinity", index=index)
    return array


def _check_pixel_range(images: np.ndarray, what: str = "images") -> np.ndarray:
    bad = (images < 0).any(axis=1) | (images > 1).any(axis=1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise BadInput(f"{what}[{index}] has values outside [0, 1]", index=index)
    return images


def _images_from_json(payload: Any, settings: Settings) -> np.ndarray | Encoded:
    if not isinstance(payload, dict) or not ({"images", "images_png"} & payload.keys()):
        raise BadInput("expected a JSON object with 'images' (lists of 784 or 28x28 numbers) or 'images_png'")
    if "images_png" in payload:
        strings = payload["images_png"]
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise BadInput("'images_png' must be a list of base64 strings")
        _check_count(len(strings), settings)
        blobs = []
        for index, text in enumerate(strings):
            try:
                blobs.append(base64.b64decode(text.split(",")[-1], validate=True))  # data: URLs too
            except (binascii.Error, ValueError):
                raise BadInput(f"images_png[{index}] is not valid base64", index=index) from None
        return Encoded(blobs, [f"images_png[{i}]" for i in range(len(blobs))])
    images = payload["images"]
    _check_count(len(images) if isinstance(images, list) else 1, settings)
    return _check_pixel_range(_rows(images, IMAGE_SHAPES, "images", "784 or 28x28"))


async def read_images(request: Request, settings: Settings) -> np.ndarray:
    """Any accepted image body -> (N, 784) pixels: float32 in [0, 1], or uint8 0-255 from raw bytes.

    Raw pixels stay uint8 until the forward pass scales them (service.core's `as_unit_floats`) in
    the worker thread: for a large batch the conversion costs more event-loop time than reading the body.
    """
    kind = _accepted_type(request, IMAGE_TYPES)
    body = await _read_body_of(request, kind, settings)
    if kind == "application/octet-stream":
        if len(body) % PIXELS:
            raise BadInput(f"raw body must be N x 784 uint8 bytes; got {len(body)} bytes")
        _check_count(len(body) // PIXELS, settings)
        return np.frombuffer(body, dtype=np.uint8).reshape(-1, PIXELS)  # scaled in the forward pass
    header = request.headers.get("content-type", "")
    if not parse_on_loop(body, multipart=kind == "multipart/form-data"):
        return await offload_of(request, settings).run(_decoded_images, kind, header, body, settings)
    parsed = _parse_images(kind, header, body, settings)
    if isinstance(parsed, np.ndarray):
        return parsed
    return await decode(parsed, settings, request)


def _parse_images(kind: str, header: str, body: bytes, settings: Settings) -> np.ndarray | Encoded:
    """A body of images -> their pixels (JSON numbers), or the images still encoded (PNG, JPEG, ...)."""
    if kind == "application/json":
        return _images_from_json(_parse_json(body), settings)
    if kind.startswith("image/"):
        return Encoded([body], ["body"])
    files = form_files(header, body)
    _check_count(len(files), settings, "files")
    return Encoded([blob for _, blob in files], [f"file {name!r}" for name, _ in files])


def _decoded_images(kind: str, header: str, body: bytes, settings: Settings) -> np.ndarray:
    """`_parse_images`, then decoding what is encoded, all in the calling thread (a decode thread)."""
    parsed = _parse_images(kind, header, body, settings)
    return parsed if isinstance(parsed, np.ndarray) else decode_here(parsed, settings)


async def read_latents(request: Request, settings: Settings, latent_size: int) -> np.ndarray:
    """{"latents": [[p floats], ...]} or raw float32 bytes -> (N, p) float32."""
    kind = _accepted_type(request, LATENT_TYPES)
    body = await _read_body_of(request, kind, settings)
    if parse_on_loop(body, multipart=False):
        return _parse_latents(kind, body, settings, latent_size)
    return await offload_of(request, settings).run(_parse_latents, kind, body, settings, latent_size)


def _parse_latents(kind: str, body: bytes, settings: Settings, latent_size: int) -> np.ndarray:
    if kind == "application/octet-stream":
        if not body or len(body) % (4 * latent_size):
            raise BadInput(f"raw body must be N x {latent_size} float32 values; got {len(body)} bytes")
        latents = np.frombuffer(body, dtype="<f4").reshape(-1, latent_size).astype(np.float32)
        _check_count(len(latents), settings, "latents")
        return _check_finite(latents, "latents")
    payload = _parse_json(body)
    if not isinstance(payload, dict) or "latents" not in payload:
        raise BadInput(f"expected a JSON object with 'latents': a list of vectors of {latent_size} numbers")
    latents = payload["latents"]
    _check_count(len(latents) if isinstance(latents, list) else 1, settings, "latents")
    return _rows(latents, ((latent_size,),), "latents", f"{latent_size} (this model's latent size)")


def output_format(request: Request, requested: str | None, allowed: tuple[str, ...]) -> str:
    """`format` wins over the Accept header; JSON is the default."""
    if requested is not None:
        if requested not in allowed:
            raise NotAcceptable(f"format {requested!r} is not available here; choose one of: {', '.join(allowed)}")
        return requested
    accept = request.headers.get("accept", "")
    for name in allowed:
        if name != "json" and OUTPUT_TYPES[name] in accept:
            return name
    return "json"


def json_response(content: dict[str, Any], status_code: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status_code, media_type="application/json"
    )


def raw_response(rows: np.ndarray) -> Response:
    """uint8 pixels (from the `Pass.*_PIXELS` forward passes) as they are, latents as little-endian float32.

    X-Shape gives rows,columns.
    """
    if rows.dtype != np.uint8:
        rows = rows.astype("<f4", copy=False)
    return Response(
        rows.tobytes(), media_type="application/octet-stream", headers={"X-Shape": f"{rows.shape[0]},{rows.shape[1]}"}
    )
