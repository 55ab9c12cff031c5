"""What a call takes, made into what a request sends: pixels (arrays) or files (paths, PIL images, bytes).

Arrays are N x 784 or N x 28 x 28 (or one image of 784 or 28 x 28): uint8 0-255, other integers in
0-255, or floats in [0, 1], white digit on black as in MNIST, taken as given by the service. Files
(PNG or JPEG: paths, PIL images, bytes) go as multipart uploads, so the service normalises them the
way MNIST was made (README, "The API"). A mistake found here raises the InvalidInput a service would.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aeclient.errors import InvalidInput

SIDE = 28
PIXELS = SIDE * SIDE
FileLike = str | os.PathLike[str] | bytes | Image.Image
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Pixels:
    """(N, 784) uint8 pixels, or float32 in [0, 1]."""

    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def as_uint8(self) -> np.ndarray:
        """What the raw transport sends: floats are rounded to 8 bits (MNIST's own precision)."""
        if self.rows.dtype == np.uint8:
            return self.rows
        return np.rint(self.rows * 255).astype(np.uint8)

    def as_unit_floats(self) -> np.ndarray:
        if self.rows.dtype == np.uint8:
            return self.rows.astype(np.float32) / 255
        return self.rows


@dataclass(frozen=True)
class Files:
    """Encoded image files: (name, bytes, media type) each, sent as the parts of a multipart body."""

    parts: list[tuple[str, bytes, str]]

    def __len__(self) -> int:
        return len(self.parts)


Batch = Pixels | Files


def is_file_like(item: object) -> bool:
    return isinstance(item, str | os.PathLike | bytes | Image.Image)


def as_batch(images: Any) -> Batch:
    """Images as a call may take them -> Pixels or Files; never empty."""
    if is_file_like(images):
        images = [images]
    if isinstance(images, Sequence) and images and all(is_file_like(item) for item in images):
        return Files([_file_part(item, index) for index, item in enumerate(images)])
    if isinstance(images, Sequence) and any(is_file_like(item) for item in images):
        raise InvalidInput("images: pass either arrays or files (paths, PIL images, bytes), not a mix")
    return Pixels(_pixel_rows(images))


def _file_part(item: FileLike, index: int) -> tuple[str, bytes, str]:
    if isinstance(item, Image.Image):
        buffer = io.BytesIO()
        item.save(buffer, format="PNG")
        return f"image{index}.png", buffer.getvalue(), "image/png"
    if isinstance(item, bytes):
        kind = "image/jpeg" if item[:3] == b"\xff\xd8\xff" else "image/png"
        return f"image{index}.{kind.split('/')[1]}", item, kind
    path = Path(item)
    try:
        content = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"images[{index}]: cannot read {path}: {e.strerror}", details={"index": index}) from None
    kind = "image/jpeg" if path.suffix.lower() in JPEG_SUFFIXES else "image/png"
    return path.name, content, kind


def _pixel_rows(images: Any) -> np.ndarray:
    try:
        array = np.asarray(images)
    except ValueError:
        raise InvalidInput("images: a ragged list; each image must be 784 values or 28 x 28") from None
    if array.shape in ((PIXELS,), (SIDE, SIDE)):
        array = array.reshape(1, PIXELS)
    if array.ndim not in (2, 3) or array.shape[1:] not in ((PIXELS,), (SIDE, SIDE)):
        raise InvalidInput(f"images: shape {list(array.shape)}; expected N x 784 or N x 28 x 28")
    if len(array) == 0:
        raise InvalidInput("images: empty batch; send at least one image")
    rows = array.reshape(len(array), PIXELS)
    if rows.dtype == np.uint8:
        return rows
    if rows.dtype.kind in "iu":
        _first_bad(rows, (rows < 0) | (rows > 255), "has values outside 0-255")
        return rows.astype(np.uint8)
    if rows.dtype.kind != "f":
        raise InvalidInput(f"images: dtype {rows.dtype}; expected uint8 pixels or floats in [0, 1]")
    _first_bad(rows, ~np.isfinite(rows), "contains NaN or infinity")
    _first_bad(rows, (rows < 0) | (rows > 1), "has values outside [0, 1] (uint8 arrays take 0-255)")
    return rows.astype(np.float32, copy=False)


def as_latents(latents: Any) -> np.ndarray:
    """Latent vectors (N, p), or one (p,) -> float32 (N, p); finite."""
    array = np.asarray(latents)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] == 0 or array.dtype.kind not in "fiu":
        raise InvalidInput(f"latents: shape {list(array.shape)} of {array.dtype}; expected N x p numbers")
    if len(array) == 0:
        raise InvalidInput("latents: empty batch; send at least one latent vector")
    _first_bad(array, ~np.isfinite(array), "contains NaN or infinity", what="latents")
    return array.astype(np.float32, copy=False)


def _first_bad(rows: np.ndarray, bad: np.ndarray, why: str, what: str = "images") -> None:
    flagged = bad.any(axis=1)
    if flagged.any():
        index = int(np.flatnonzero(flagged)[0])
        raise InvalidInput(f"{what}[{index}] {why}", details={"index": index})
