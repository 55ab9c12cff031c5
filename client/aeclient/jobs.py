"""One call of the API over any number of inputs, without I/O: split into spans that fit the service's limits,
one request per span, the replies' parts put back together in order.

A client runs a job: the first span's request alone (its reply's X-Model and X-Model-Version pin
the rest, so that one job is answered by one version even if `stable` moves meanwhile), then the
others concurrently. Images go as raw uint8 bytes (the `raw` transport, the default), as JSON
floats (`json`), or, when they are files, as a multipart upload; replies come back raw or as JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from aeclient.inputs import PIXELS, SIDE, Batch, Files, Pixels
from aeclient.wire import JSON, RAW, Call, Limits, Reply, Target, dump_json, json_body, raw_rows

T = TypeVar("T")
Span = tuple[int, int]  # [start, stop) in the call's items
Transport = Literal["raw", "json"]
# Upper bounds on an item's share of a body, to split jobs under max_body_bytes before building them
JSON_BYTES_PER_VALUE = 26  # "-1.2345678901234567e-05," is 24
PART_OVERHEAD = 256  # a multipart part's boundary and headers, file name aside
BODY_OVERHEAD = 1024  # a JSON object's keys, a multipart body's closing boundary


class Job(ABC, Generic[T]):
    path: str

    def __init__(self, count: int, target: Target) -> None:
        self.count = count  # items in the call (0: one request with no items, GET /latent-map)
        self.target = target

    def spans(self, limits: Limits, chunk_size: int | None = None) -> list[Span]:
        """Consecutive spans, each within the limits (a lone item over the byte limit is sent, for a 413)."""
        most = min(chunk_size or limits.max_images_per_request, limits.max_images_per_request)
        room = limits.max_body_bytes - BODY_OVERHEAD
        sizes = self.item_bytes()
        if isinstance(sizes, int):  # every item the same size
            step = max(1, min(most, room // sizes))
            return [(start, min(start + step, self.count)) for start in range(0, max(self.count, 1), step)]
        spans, start, size = [], 0, 0
        for index, item in enumerate(sizes):
            if index > start and (index - start >= most or size + item > room):
                spans.append((start, index))
                start, size = index, 0
            size += item
        return [*spans, (start, self.count)]

    @abstractmethod
    def item_bytes(self) -> int | list[int]:
        """Upper bounds on what each item adds to a request body; one int when they are all the same."""

    @abstractmethod
    def call(self, span: Span, target: Target) -> Call: ...

    @abstractmethod
    def part(self, span: Span, reply: Reply) -> Any:
        """A reply -> this span's share of the result; an error reply raises its typed exception."""

    @abstractmethod
    def result(self, parts: list[Any]) -> T: ...


def _images_call(path: str, batch: Batch, span: Span, target: Target, transport: Transport, accept: str) -> Call:
    start, stop = span
    headers = {"accept": accept}
    if isinstance(batch, Files):
        return Call("POST", path, target.params(), headers, files=[("file", part) for part in batch.parts[start:stop]])
    if transport == "raw":
        body = batch.as_uint8()[start:stop].tobytes()
        return Call("POST", path, target.params(), headers | {"content-type": RAW}, body)
    body = dump_json({"images": batch.as_unit_floats()[start:stop]})
    return Call("POST", path, target.params(), headers | {"content-type": JSON}, body)


def _image_bytes(batch: Batch, transport: Transport) -> int | list[int]:
    if isinstance(batch, Files):
        return [len(content) + len(name.encode()) + PART_OVERHEAD for name, content, _ in batch.parts]
    return PIXELS if transport == "raw" else PIXELS * JSON_BYTES_PER_VALUE


def as_images(rows: np.ndarray, floats: bool) -> np.ndarray:
    """(N, 784) uint8 or float pixels -> (N, 28, 28): float32 in [0, 1] if `floats`, else uint8."""
    if floats:
        unit = rows.astype(np.float32) / 255 if rows.dtype == np.uint8 else rows.astype(np.float32, copy=False)
        return unit.reshape(-1, SIDE, SIDE)
    pixels = rows if rows.dtype == np.uint8 else np.rint(np.clip(rows, 0, 1) * 255).astype(np.uint8)
    return pixels.reshape(-1, SIDE, SIDE)


class Encode(Job[np.ndarray]):
    path = "/encode"

    def __init__(self, batch: Batch, target: Target, transport: Transport) -> None:
        super().__init__(len(batch), target)
        self.batch, self.transport = batch, transport

    def item_bytes(self) -> int | list[int]:
        return _image_bytes(self.batch, self.transport)

    def call(self, span: Span, target: Target) -> Call:
        accept = RAW if self.transport == "raw" else JSON
        return _images_call(self.path, self.batch, span, target, self.transport, accept)

    def part(self, span: Span, reply: Reply) -> np.ndarray:
        if self.transport == "raw":
            return raw_rows(reply, "<f4", span[1] - span[0], span[0])
        return np.asarray(json_body(reply, span[0])["latents"], dtype=np.float32)

    def result(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.float32, copy=False)


class Decode(Job[np.ndarray]):
    path = "/decode"

    def __init__(self, latents: np.ndarray, target: Target, transport: Transport, floats: bool) -> None:
        super().__init__(len(latents), target)
        self.latents, self.transport, self.floats = latents, transport, floats

    def item_bytes(self) -> int:
        return self.latents.shape[1] * (4 if self.transport == "raw" else JSON_BYTES_PER_VALUE)

    def call(self, span: Span, target: Target) -> Call:
        rows = self.latents[span[0] : span[1]]
        if self.transport == "raw":
            headers = {"content-type": RAW, "accept": RAW}
            return Call("POST", self.path, target.params(), headers, rows.astype("<f4").tobytes())
        headers = {"content-type": JSON, "accept": JSON}
        return Call("POST", self.path, target.params(), headers, dump_json({"latents": rows}))

    def part(self, span: Span, reply: Reply) -> np.ndarray:
        if self.transport == "raw":
            return raw_rows(reply, "u1", span[1] - span[0], span[0])
        return np.asarray(json_body(reply, span[0])["images"], dtype=np.float32)

    def result(self, parts: list[np.ndarray]) -> np.ndarray:
        return as_images(np.concatenate(parts), self.floats)


class Reconstruct(Job[tuple[np.ndarray, np.ndarray]]):
    """Reconstructions and their MSE per image (mean over pixels, images in [0, 1]).

    Raw replies carry no MSE: for arrays sent raw it is computed here, between the 8-bit pixels
    sent and the 8-bit reconstruction (within about 1e-5 of the service's float MSE). Files are
    normalised by the service, which alone knows what it compared, so they always get a JSON reply.
    """

    path = "/reconstruct"

    def __init__(self, batch: Batch, target: Target, transport: Transport, floats: bool) -> None:
        super().__init__(len(batch), target)
        self.batch, self.floats = batch, floats
        self.raw_reply = transport == "raw" and isinstance(batch, Pixels)
        self.transport = transport

    def item_bytes(self) -> int | list[int]:
        return _image_bytes(self.batch, self.transport)

    def call(self, span: Span, target: Target) -> Call:
        accept = RAW if self.raw_reply else JSON
        return _images_call(self.path, self.batch, span, target, self.transport, accept)

    def part(self, span: Span, reply: Reply) -> tuple[np.ndarray, np.ndarray]:
        start, stop = span
        if self.raw_reply:
            assert isinstance(self.batch, Pixels)
            pixels = raw_rows(reply, "u1", stop - start, start)
            sent = self.batch.as_uint8()[start:stop]
            error = (pixels.astype(np.float32) - sent.astype(np.float32)) / 255
            return pixels, (error**2).mean(axis=1)
        body = json_body(reply, start)
        return np.asarray(body["reconstructions"], np.float32), np.asarray(body["mse"], np.float32)

    def result(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        images = np.concatenate([images for images, _ in parts])
        mse = np.concatenate([mse for _, mse in parts]).astype(np.float32)
        return as_images(images, self.floats), mse


@dataclass(frozen=True)
class LatentMap:
    """The test set's latent codes on a 2-D map; `positions`: where the posted images land, in order."""

    model: str
    version: int
    projection: str  # "identity" (p = 2) or "pca" (p > 2)
    points: np.ndarray  # (M, 2) float32
    labels: np.ndarray  # (M,) the test digits' labels
    positions: np.ndarray | None  # (N, 2) float32, or None without images


class PlaceOnMap(Job[LatentMap]):
    path = "/latent-map"

    def __init__(self, batch: Batch | None, target: Target, transport: Transport, limit: int | None) -> None:
        super().__init__(len(batch) if batch is not None else 0, target)
        self.batch, self.transport, self.limit = batch, transport, limit

    def item_bytes(self) -> int | list[int]:
        return 1 if self.batch is None else _image_bytes(self.batch, self.transport)

    def call(self, span: Span, target: Target) -> Call:
        limit = {"limit": str(self.limit)} if self.limit is not None else {}
        if self.batch is None:
            return Call("GET", self.path, target.params() | limit, {"accept": JSON})
        call = _images_call(self.path, self.batch, span, target, self.transport, JSON)
        return Call(call.method, call.path, call.params | limit, call.headers, call.content, call.files)

    def part(self, span: Span, reply: Reply) -> dict[str, Any]:
        body: dict[str, Any] = json_body(reply, span[0])
        return body

    def result(self, parts: list[dict[str, Any]]) -> LatentMap:
        first = parts[0]
        points = np.asarray([[p["x"], p["y"]] for p in first["points"]], np.float32).reshape(-1, 2)
        labels = np.asarray([p["label"] for p in first["points"]], np.int64)
        positions = None
        if self.batch is not None:
            positions = np.asarray([[p["x"], p["y"]] for part in parts for p in part["positions"]], np.float32)
        return LatentMap(first["model"], first["version"], first["projection"], points, labels, positions)
