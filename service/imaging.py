"""PNG in and out of the service: user images normalised the MNIST way, and figures.

A drawing from a phone, a canvas or a scan goes through the procedure that made MNIST
(greyscale, white ink on black, ink box scaled into 20x20, centred by mass on 28x28),
otherwise the model sees something unlike its training data. Figures use matplotlib's
Figure and Agg canvas directly, not pyplot: no global state, so worker threads are safe.
"""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageOps, UnidentifiedImageError

from models.images import PIXELS, SIDE, tile

MAX_PIXELS = 25_000_000  # decode_png refuses larger images before decoding them; the service has a tighter budget
BOX = 20  # MNIST scaled each digit's ink box to fit 20x20
INK = 0.1  # a pixel darker than the paper by this much (on a 0-1 scale) is ink
SEPARATOR = 2  # rows of light grey between the row pairs of comparison_png, before scaling
SEPARATOR_GREY = 0.75


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; the message says what is wrong (no index: the caller adds which image)."""


def decode_png(data: bytes) -> np.ndarray:
    """An image in one of FORMATS (any size, any mode) -> (784,) float32 in [0, 1], white digit on black."""
    image = open_image(data)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(f"image too large: {width}x{height} pixels, at most {MAX_PIXELS:,} allowed")
    return decode_image(image)


# The formats a digit comes in. Pillow reads many more, some through external programs (EPS runs
# Ghostscript) or with decoders little exercised on hostile input: those are refused unread.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # TIFF: scanners


def open_image(data: bytes) -> Image.Image:
    """Bytes -> an image whose header is read but nothing decoded: `size` is what decoding will allocate.

    Pillow reads lazily, so a caller can refuse a decompression bomb (a few KB of zlib that would
    decode to millions of pixels) before paying for it. A JPEG is set to decode in grey at 1/2 to
    1/8 scale (a phone photo, much faster), and `size` says so already.
    """
    if not data:
        raise ImageDecodeError("empty image data")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        image.draft("L", (256, 256))  # JPEG only
    except UnidentifiedImageError:  # its message names a BytesIO object: useless to a client
        raise ImageDecodeError(f"not a decodable image (unrecognised format): send {', '.join(FORMATS)}") from None
    except Exception as exc:  # Pillow's decoders raise many types on hostile input (OSError, SyntaxError, ...)
        raise ImageDecodeError(f"not a decodable image ({str(exc) or type(exc).__name__})") from exc
    if image.width * image.height == 0:
        raise ImageDecodeError("image has no pixels")
    return image


def decode_image(image: Image.Image) -> np.ndarray:
    """An image from `open_image` -> (784,) float32 in [0, 1], white digit on black, normalised the MNIST way."""
    grey = _read_grey(image)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        grey = 1 - grey  # dark ink on light paper: MNIST is white on black
        border = 1 - border
    if grey.shape == (SIDE, SIDE):
        return grey.reshape(-1)  # already MNIST format: keep every pixel as sent
    return _normalise(grey, background=float(np.median(border))).reshape(-1)


def _read_grey(image: Image.Image) -> np.ndarray:
    """Decode -> 2-D float32 greyscale in [0, 1]; bad input raises ImageDecodeError and nothing else."""
    try:
        with image:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # phone photos are often stored sideways
            return _to_grey(image)
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types on hostile input (OSError, SyntaxError, ...)
        raise ImageDecodeError(f"not a decodable image ({str(exc) or type(exc).__name__})") from exc


def _to_grey(image: Image.Image) -> np.ndarray:
    """Any mode -> 2-D float32 in [0, 1], 0 black."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # Wide modes hold 16-bit values, floats in [0, 1] or 8-bit values stored wide: scale by the range in use.
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32))
        top = float(grey.max())
        full = 1 if image.mode == "F" and top <= 1 else 255 if top <= 255 else 65535
        return np.clip(grey / np.float32(full), 0, 1)
    if image.has_transparency_data:
        # Canvas drawings are dark strokes on a transparent background: lay them on white paper.
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255)


def _normalise(grey: np.ndarray, background: float) -> np.ndarray:
    """White-on-black ink of any size -> 28x28: crop to the ink, fit into 20x20, centre by mass."""
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    # Photos have grey paper and grey ink: stretch so paper is 0 and the strongest stroke is 1.
    peak = float(grey.max())
    if peak - background < INK:
        return canvas  # blank page
    grey = np.clip((grey - background) / (peak - background), 0, 1)
    rows = np.flatnonzero((grey > INK).any(axis=1))
    cols = np.flatnonzero((grey > INK).any(axis=0))
    crop = np.ascontiguousarray(grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    height, width = crop.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # Resizing the float image keeps the antialiased edges MNIST digits have; LANCZOS overshoots, hence the clip.
    digit = np.clip(np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS)), 0, 1)
    height, width = digit.shape
    mass = float(digit.sum())  # > 0: the crop holds ink, and resampling keeps the total
    centre_y = float(digit.sum(axis=1) @ np.arange(height)) / mass
    centre_x = float(digit.sum(axis=0) @ np.arange(width)) / mass
    # Integer shift that puts the centre of mass at (14, 14), clamped so the digit stays whole.
    top = int(np.clip(round(SIDE / 2 - centre_y), 0, SIDE - height))
    left = int(np.clip(round(SIDE / 2 - centre_x), 0, SIDE - width))
    canvas[top : top + height, left : left + width] = digit
    return canvas


def comparison_png(originals: np.ndarray, reconstructions: np.ndarray, columns: int = 16, scale: int = 2) -> bytes:
    """(N, 784) each -> PNG: per chunk of `columns` images, a row of originals above their reconstructions."""
    originals, columns = _batch(originals, columns)
    reconstructions, _ = _batch(reconstructions, columns)
    if originals.shape != reconstructions.shape:
        raise ValueError(f"{len(originals)} originals but {len(reconstructions)} reconstructions")
    separator = np.full((SEPARATOR, columns * SIDE), SEPARATOR_GREY, dtype=np.float32)
    blocks: list[np.ndarray] = []
    for start in range(0, len(originals), columns):
        chunk = slice(start, start + columns)
        blocks += [separator] if blocks else []
        blocks += [tile(originals[chunk], columns), tile(reconstructions[chunk], columns)]
    return _png(np.vstack(blocks), scale)


def grid_png(images: np.ndarray, columns: int = 16, scale: int = 2) -> bytes:
    """(N, 784) -> PNG grid of digits, `columns` per row."""
    images, columns = _batch(images, columns)
    return _png(tile(images, columns), scale)


def _batch(images: np.ndarray, columns: int) -> tuple[np.ndarray, int]:
    """Images as (N, 784) float32, and the columns to use: a short batch makes a narrower figure."""
    array = np.asarray(images, dtype=np.float32)
    if array.ndim < 2 or array.size == 0 or array[0].size != PIXELS:
        raise ValueError(f"expected a non-empty batch of 28x28 images (N, 784), got shape {array.shape}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    return array.reshape(len(array), PIXELS), min(columns, len(array))


def _png(canvas: np.ndarray, scale: int) -> bytes:
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    pixels = np.round(np.clip(np.nan_to_num(canvas), 0, 1) * 255).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest neighbour: crisp pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def scatter_png(points: np.ndarray, labels: np.ndarray, highlights: np.ndarray | None = None, title: str = "") -> bytes:
    """Latent map: points (N, 2) coloured by digit 0-9, optional highlights (M, 2) as stars on top; 700x600 PNG."""
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(f"expected points (N, 2) and labels (N,), got {points.shape} and {labels.shape}")
    figure = Figure(figsize=(7, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = mpl.colormaps["tab10"]
    for digit in range(10):  # every digit, present or not, so the legend and colours never shift
        mine = points[labels == digit]
        axes.scatter(mine[:, 0], mine[:, 1], s=4, color=colours(digit), alpha=0.7, linewidths=0, label=str(digit))
    if highlights is not None and len(highlights):
        x, y = np.asarray(highlights, dtype=np.float64).reshape(-1, 2).T
        axes.scatter(x, y, s=250, marker="*", color="white", edgecolors="black", zorder=3, label="your images")
    axes.set_xlabel("z1")
    axes.set_ylabel("z2")
    if title:
        axes.set_title(title)
    legend = axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    for handle in legend.legend_handles[:10]:
        handle.set_sizes([30])  # type: ignore[union-attr]  # readable dots in the legend; the star keeps its size
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})  # no version stamp: same bytes
    return buffer.getvalue()
