"""Request bodies that cost the server far more than they weigh: for bench/under_attack.py and the live tests.

Each found by a real run against the service before its decode budget (BENCHMARKS.md, "No request
holds the event loop"): PNGs of a few KB that decode to millions of pixels, sent as base64 in
JSON or as many files in one multipart body, and JSON bodies of tens of MB. The statuses are the
service's with its default settings.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import orjson
from PIL import Image

BOUNDARY = "hostileboundary5XkT2pQ9"
JSON_LIMIT = 8 * 2**20  # the service's default AE_MAX_JSON_BYTES


@dataclass(frozen=True)
class Attack:
    path: str
    content_type: str
    body: bytes
    status: int  # what the service answers, given its default settings


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def strip_png(height: int, width: int = 1) -> bytes:
    """A greyscale PNG of zeros, `width` x `height`, zlib-compressed: 1 x 25,000,000 weighs 48 KB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    rows = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # the filter byte, then the row
    data = b"".join(rows.compress(row * 65536) for _ in range(height // 65536))
    data += rows.compress(row * (height % 65536)) + rows.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def square_png(side: int, seed: int = 0) -> bytes:
    """A `side` x `side` greyscale PNG of sparse random dots: a large but honest image to decode."""
    pixels = (np.random.default_rng(seed).random((side, side)) < 0.05).astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(files: list[bytes]) -> tuple[str, bytes]:
    """A multipart/form-data body of `files` (file0.png, ...): its Content-Type and bytes."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="file{i}.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode() + blob + b"\r\n" for i, blob in enumerate(files)]  # fmt: skip
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def base64_json(files: list[bytes]) -> bytes:
    return orjson.dumps({"images_png": [base64.b64encode(blob).decode() for blob in files]})


def large_json(max_bytes: int, seed: int = 0) -> bytes:
    """{"images": [...]}: as many rows of 784 six-digit floats as fit in `max_bytes`, the last row a value short.

    Refused (422), but only once all of it is parsed.
    """
    row = np.random.default_rng(seed).random(784).round(6)
    rows = [row.tolist()] * (max_bytes // len(orjson.dumps(row.tolist()) + b","))
    rows[-1] = rows[-1][:-1]
    return orjson.dumps({"images": rows})


def attacks(scale: float = 1.0) -> dict[str, Attack]:
    """The hostile requests by name; `scale` < 1 makes the PNGs smaller (for quick runs), keeping what they test."""
    tall = strip_png(max(10_000, int(25_000_000 * scale)))  # refused: taller than any digit
    fits = square_png(400)  # 160,000 pixels: 100 of them are exactly the default request budget
    files = max(2, int(100 * scale))
    many_tall, many_fit = multipart([strip_png(max(10_000, int(1_500_000 * scale)))] * files), multipart([fits] * 100)
    strips = multipart([strip_png(8192)] * (16_000_000 // 8192))  # the most rows the default budget allows
    return {
        "4 tall PNGs as base64": Attack("/encode", "application/json", base64_json([tall] * 4), 413),
        "100 tall PNGs, multipart": Attack("/encode", many_tall[0], many_tall[1], 413),
        "100 400x400 PNGs, multipart": Attack("/encode", many_fit[0], many_fit[1], 200),
        "1,953 1x8192 strips, multipart": Attack("/encode", strips[0], strips[1], 200),
        "one tall PNG body": Attack("/encode", "image/png", tall, 413),
        "8 MiB JSON body (the limit)": Attack("/encode", "application/json", large_json(JSON_LIMIT), 422),
        "29 MiB JSON body": Attack("/encode", "application/json", large_json(29 * 2**20), 413),
    }
