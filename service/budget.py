"""What a request's images may cost, checked before any is decoded, and where the costly work runs.

Decoding costs what the image decodes to, not what it weighs: 3 KB of zlib can decode to 25
million pixels. So every image's header is read first (Pillow reads lazily: the size is known
before decoding) and the request refused, naming the image, when one image or all of them would
decode to more than the settings allow. Then work that would hold the event loop for more than
about half a millisecond (parsing a body over INLINE_BYTES; decoding more than INLINE_IMAGES
images or INLINE_PIXELS pixels) runs in the app's decode threads: a pool of its own, not the
forward passes' workers, so a storm of uploads queues there and never delays a forward pass; past
AE_DECODE_QUEUE such works in flight, more are refused (503, Retry-After) rather than queued
without end, each holding its body. Smaller work stays on the loop, where a thread hop would cost
more than it saves. The figures behind the thresholds: BENCHMARKS.md, "No request holds the event
loop".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image
from starlette.requests import Request

from service.errors import BadInput, Busy, PayloadTooLarge, ServiceError
from service.imaging import ImageDecodeError, decode_image, open_image
from service.settings import Settings

T = TypeVar("T")

INLINE_BYTES = 64 * 1024  # JSON parses at ~4.4 us per KB here: at most ~0.3 ms on the loop; a hop costs ~45 us
INLINE_IMAGES = 8  # a 28x28 PNG takes ~40 us to open and decode
INLINE_PIXELS = 32_768  # beyond that, ~10 ns a pixel: a 181x181 drawing, ~0.4 ms
# Each row costs about ten pixels' time, some of it holding the GIL: a 1 x 4,000,000 strip holds it
# 25 ms at a time, even in a worker thread. No digit is 8,192 pixels long.
MAX_SIDE = 8192


def parse_on_loop(body: bytes, multipart: bool) -> bool:
    """Whether parsing `body` is quick enough to do on the event loop."""
    if len(body) > INLINE_BYTES:
        return False
    return not multipart or body.count(b"\n--") <= INLINE_IMAGES  # a multipart body costs ~6 us a part


class Offload:
    """The threads that decode images and parse large bodies; at most `threads` run at once, and at most
    `limit` works are running or waiting for a thread: more are refused."""

    def __init__(self, threads: int, limit: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="ae-decode")
        self.limit = limit
        self.in_flight = 0  # submitted and not yet finished (or cancelled before it started)
        self._lock = threading.Lock()  # the count drops in whichever thread the work ends

    async def run(self, work: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self.in_flight >= self.limit:
                raise Busy(f"{self.in_flight} uploads are being decoded or wait for it, the most the service "
                           f"queues (AE_DECODE_QUEUE); retry shortly")  # fmt: skip
            self.in_flight += 1
        submitted = self._executor.submit(_freeing, work, *args)
        submitted.add_done_callback(self._finished)  # also when the client leaves: the work may still be running
        return await asyncio.wrap_future(submitted)

    def _finished(self, _future: Future[T]) -> None:
        with self._lock:
            self.in_flight -= 1


def _freeing(work: Callable[..., T], *args: object) -> T:
    """`work(*args)`; a client's error leaves without the frames it was raised in.

    Those frames hold what the work built (a large body's parsed JSON: millions of Python objects),
    and whoever frees the traceback frees them: here, in this thread, rather than on the event loop.
    """
    try:
        return work(*args)
    except ServiceError as e:
        error = e
        error.__traceback__ = error.__context__ = error.__cause__ = None
    raise error


def offload_of(request: Request, settings: Settings) -> Offload:
    """The app's decode threads, made on first use; they end when the app is collected (or the process exits)."""
    state = request.app.state
    offload: Offload | None = getattr(state, "decode_threads", None)
    if offload is None:
        offload = state.decode_threads = Offload(settings.decode_threads, settings.decode_queue)
    return offload


@dataclass(frozen=True)
class Encoded:
    """Images still encoded (PNG, JPEG, ...), each with the name an error message gives it."""

    blobs: list[bytes]
    names: list[str]


def opened(encoded: Encoded, settings: Settings) -> tuple[list[Image.Image], int]:
    """Every image's header read and checked against the budgets, nothing decoded; and their pixels in all."""
    images, total = [], 0
    for index, (blob, name) in enumerate(zip(encoded.blobs, encoded.names, strict=True)):
        try:
            image = open_image(blob)
        except ImageDecodeError as e:
            raise BadInput(f"{name} (image {index}): {e}", index=index) from None
        width, height = image.size
        pixels = width * height
        if pixels > settings.max_image_pixels or max(width, height) > MAX_SIDE:
            limit = settings.max_image_pixels
            raise _too_large(name, index, f"is {width:,}x{height:,} pixels; an image may have at most {limit:,} "
                             f"pixels (AE_MAX_IMAGE_PIXELS) and no side over {MAX_SIDE:,}", limit)  # fmt: skip
        total += pixels
        if total > settings.max_request_pixels:
            limit = settings.max_request_pixels
            raise _too_large(name, index, f"brings the request to {total:,} decoded pixels; a request may have at "
                             f"most {limit:,} (AE_MAX_REQUEST_PIXELS)", limit)  # fmt: skip
        images.append(image)
    return images, total


def _too_large(name: str, index: int, problem: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{name} (image {index}) {problem}", index=index, limit=limit)


def decoded(images: list[Image.Image], names: list[str]) -> np.ndarray:
    """Opened images -> (N, 784) float32; an undecodable one is named by its index."""
    rows = []
    for index, (image, name) in enumerate(zip(images, names, strict=True)):
        try:
            rows.append(decode_image(image))
        except ImageDecodeError as e:
            raise BadInput(f"{name} (image {index}): {e}", index=index) from None
    return np.stack(rows)


def decode_here(encoded: Encoded, settings: Settings) -> np.ndarray:
    """Check the budgets, then decode, in the calling thread."""
    return decoded(opened(encoded, settings)[0], encoded.names)


async def decode(encoded: Encoded, settings: Settings, request: Request) -> np.ndarray:
    """Check the budgets, then decode: on the loop when that is quick, in the app's decode threads otherwise."""
    if len(encoded.blobs) > INLINE_IMAGES:  # even reading the headers would take long
        return await offload_of(request, settings).run(decode_here, encoded, settings)
    images, pixels = opened(encoded, settings)
    if pixels > INLINE_PIXELS:
        return await offload_of(request, settings).run(decoded, images, encoded.names)
    return decoded(images, encoded.names)
