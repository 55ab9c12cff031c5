"""Rate and distortion: bytes per MNIST test digit against MSE, for every shipped configuration's latent codes
(float32 and float16) beside PNG, JPEG and WebP (Pillow) of the same digits at several quality levels.

The models run in-process (the latest version of each model in the store). Every figure is a mean
over the same test digits. MSE is per pixel, images in [0, 1], between the original 8-bit digit and
what a user gets back as 8-bit pixels: the decoder's output rounded (as `ae-client decode` writes
it), or the image codec's decoded file. Bytes per digit: a code is p numbers of 4 (float32) or 2
(float16) bytes, with nothing else (the model version that decodes it is shared by all codes, as
in the codes file of `ae-client encode`); an image codec's bytes are measured two ways, each digit
its own file (headers included, as a folder of PNGs would hold them) and all the digits tiled into
one image (the headers shared), and, to reach the sizes of codes, downscaled to 14 x 14 or 7 x 7
pixels before tiling and upscaled (bilinear) after decoding. The mean test digit itself, 0 bytes
per digit, anchors the scale. The first table answers "what is the best I can get in B bytes a digit".
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import REPO, Table, base_parser, default_data_dir, fmt, machine, report
from bench.inference import test_images
from models import CheckpointStore

SIDE = 28
JPEG_QUALITIES = (1, 10, 25, 50, 75, 95)
WEBP_QUALITIES = (0, 10, 25, 50, 75, 95)
# Smaller than a digit's PNG, the codecs need fewer pixels: digits downscaled before tiling, upscaled after decoding
SMALLER = ((14, (1, 25, 75), (0, 25, 75)), (7, (1, 25, 75), (0, 25, 75)))  # side, JPEG and WebP qualities
BUDGETS = (4, 8, 16, 32, 64, 128, 256)  # bytes per digit


@dataclass(frozen=True)
class Point:
    method: str
    setting: str
    bytes_per_digit: float
    mse: float


def mse(pixels: np.ndarray, original: np.ndarray) -> float:
    """Mean squared error per pixel, both as 8-bit pixels scaled to [0, 1]."""
    return float((((pixels.astype(np.float64) - original.astype(np.float64)) / 255) ** 2).mean())


def to_pixels(images: torch.Tensor) -> np.ndarray:
    return np.rint(images.clamp(0, 1).numpy() * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)


def autoencoder_points(store: Path, digits: np.ndarray) -> Iterable[Point]:
    found = CheckpointStore(store)
    x = torch.from_numpy(digits.reshape(len(digits), -1).astype(np.float32) / 255)
    for name in found.names():
        checkpoint = found.load_latest(name)
        model, p = checkpoint.model.eval(), checkpoint.config.latent_size
        with torch.inference_mode():
            codes = model.encode(x)
            for dtype, size in ((torch.float32, 4), (torch.float16, 2)):
                decoded = model.decode(codes.to(dtype).to(torch.float32))
                label = f"{name} v{checkpoint.version}, p = {p}"
                yield Point(label, f"{str(dtype).removeprefix('torch.')} codes", p * size, mse(to_pixels(decoded),
                                                                                                   digits))  # fmt: skip


def encoded(image: np.ndarray, codec: str, quality: int | None) -> bytes:
    buffer = io.BytesIO()
    options = {"optimize": True} if codec == "PNG" else {"quality": quality}
    Image.fromarray(image).save(buffer, format=codec, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def tiled(digits: np.ndarray) -> np.ndarray:
    """Square digits side by side in one square-ish greyscale image (blank cells pad the last row)."""
    count, side = len(digits), digits.shape[1]
    columns = int(np.ceil(np.sqrt(count)))
    rows = -(-count // columns)
    padded = np.zeros((rows * columns, side, side), np.uint8)
    padded[:count] = digits
    return padded.reshape(rows, columns, side, side).transpose(0, 2, 1, 3).reshape(rows * side, columns * side)


def untiled(image: np.ndarray, count: int, side: int) -> np.ndarray:
    rows, columns = image.shape[0] // side, image.shape[1] // side
    return image.reshape(rows, side, columns, side).transpose(0, 2, 1, 3).reshape(-1, side, side)[:count]


def resized(digits: np.ndarray, side: int) -> np.ndarray:
    if digits.shape[1] == side:
        return digits
    resample = Image.Resampling.LANCZOS if side < digits.shape[1] else Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(digit).resize((side, side), resample)) for digit in digits])


def codec_points(digits: np.ndarray) -> Iterable[Point]:
    settings = [("PNG", None)] + [("JPEG", q) for q in JPEG_QUALITIES] + [("WEBP", q) for q in WEBP_QUALITIES]
    for codec, quality in settings:
        setting = "lossless" if quality is None else f"quality {quality}"
        files = [encoded(digit, codec, quality) for digit in digits]
        back = np.stack([decoded(data) for data in files])
        yield Point(f"{codec}, one file per digit", setting, sum(map(len, files)) / len(digits), mse(back, digits))
        yield tiled_point(digits, codec, quality, SIDE)
    for side, jpeg, webp in SMALLER:
        yield from (tiled_point(digits, "JPEG", quality, side) for quality in jpeg)
        yield from (tiled_point(digits, "WEBP", quality, side) for quality in webp)


def tiled_point(digits: np.ndarray, codec: str, quality: int | None, side: int) -> Point:
    """All the digits (at `side` x `side` pixels) in one image, its bytes shared among them."""
    whole = encoded(tiled(resized(digits, side)), codec, quality)
    back = resized(untiled(decoded(whole), len(digits), side), SIDE)
    scale = "" if side == SIDE else f", downscaled to {side}x{side}"
    setting = "lossless" if quality is None else f"quality {quality}"
    return Point(f"{codec}, all digits in one image{scale}", setting, len(whole) / len(digits), mse(back, digits))


def is_code(point: Point) -> bool:
    return point.setting.endswith("codes")


def best_within(points: list[Point], budget: float) -> str:
    fitting = [point for point in points if point.bytes_per_digit <= budget]
    if not fitting:
        return "-"
    best = min(fitting, key=lambda point: point.mse)
    return f"{best.mse:.4f} ({best.method}, {best.setting}, {fmt(best.bytes_per_digit, 1)} B)"


def tables(points: list[Point], count: int) -> list[Table]:
    codecs = [point for point in points if not is_code(point) and point.bytes_per_digit > 0]
    summary = Table(f"The lowest MSE within a budget of bytes per digit, {count:,} MNIST test digits",
                    ["bytes per digit, at most", "latent codes", "image codec, all digits in one image",
                     "image codec, one file per digit"])  # fmt: skip
    for budget in BUDGETS:
        summary.add(budget, best_within([p for p in points if is_code(p)], budget),
                    best_within([p for p in codecs if "one image" in p.method], budget),
                    best_within([p for p in codecs if "one file" in p.method], budget))  # fmt: skip
    summary.notes.append("MSE per pixel (images in [0, 1]) of the best method that fits the budget, with its "
                         "setting and actual bytes per digit (B); '-': nothing fits.")  # fmt: skip
    ranked = Table(f"Every method: bytes per digit and MSE, {count:,} MNIST test digits, smallest first",
                   ["method", "setting", "bytes per digit", "MSE per pixel"])  # fmt: skip
    for point in sorted(points, key=lambda point: (point.bytes_per_digit, point.mse)):
        ranked.add(point.method, point.setting, fmt(point.bytes_per_digit, 1), f"{point.mse:.4f}")
    ranked.notes.append("MSE between the original 8-bit digits and the 8-bit pixels each method gives back, "
                        "images in [0, 1]; 0.0000 is lossless.")  # fmt: skip
    added = Table("What float16 codes add", ["model", "MSE, float32 codes", "MSE, float16 codes", "added"])
    by_model: dict[str, dict[str, float]] = {}
    for point in filter(is_code, points):
        by_model.setdefault(point.method, {})[point.setting] = point.mse
    for model, errors in by_model.items():
        f32, f16 = errors["float32 codes"], errors["float16 codes"]
        added.add(model, f"{f32:.5f}", f"{f16:.5f}", f"{f16 - f32:+.1e}")
    return [summary, ranked, added]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--images", type=int, help="test digits (default: all 10,000; smoke: 200)")
    parser.add_argument("--device", choices=("cpu",), default="cpu", help="the models run on the CPU")
    args = parser.parse_args(argv)
    count = args.images or (200 if args.smoke else 10_000)
    digits = np.rint(test_images(args.data_dir, count) * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
    info = machine()
    mean_digit = np.rint(digits.astype(np.float64).mean(axis=0)).astype(np.uint8)
    points = [Point("the mean test digit", "nothing sent", 0.0, mse(np.broadcast_to(mean_digit, digits.shape), digits)),
              *autoencoder_points(args.store, digits), *codec_points(digits)]  # fmt: skip
    report("rate_distortion", tables(points, count), info, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
