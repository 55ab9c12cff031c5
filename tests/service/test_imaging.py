"""service.imaging on real image bytes made with Pillow, and on real MNIST digits."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pngs import encode_png

from service.imaging import (
    MAX_PIXELS,
    SEPARATOR,
    SEPARATOR_GREY,
    ImageDecodeError,
    comparison_png,
    decode_png,
    grid_png,
    scatter_png,
)
from training.data import ImageData

SIZE = (400, 300)  # width, height of the test drawings
Colour = str | tuple[int, ...]


def png(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def drawing(paper: Colour = "white", ink: Colour = "black", mode: str = "RGB", scale: int = 1) -> Image.Image:
    """A '4'-like figure of thick strokes, off-centre in the upper left of a landscape page."""
    image = Image.new(mode, (SIZE[0] * scale, SIZE[1] * scale), paper)
    pen = ImageDraw.Draw(image)
    for line in ([(60, 30), (40, 140), (150, 140)], [(120, 60), (120, 230)]):
        pen.line([(x * scale, y * scale) for x, y in line], fill=ink, width=14 * scale)
    return image


def ink_box(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(image.reshape(28, 28) > 0.1)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    grid = image.reshape(28, 28)
    return float(grid.sum(axis=1) @ np.arange(28) / grid.sum()), float(grid.sum(axis=0) @ np.arange(28) / grid.sum())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return decode_png(png(drawing()))


def test_mnist_digits_round_trip_exactly(mnist: ImageData) -> None:
    digits = mnist.test_images[:50].numpy()
    for digit in digits:
        decoded = decode_png(encode_png(digit))
        assert decoded.dtype == np.float32 and decoded.shape == (784,)
        np.testing.assert_array_equal(decoded, np.round(digit * 255) / 255)
    assert decode_png(encode_png(digits[0].reshape(28, 28))).shape == (784,)


def test_a_large_drawing_is_normalised_like_mnist(reference: np.ndarray) -> None:
    assert reference.dtype == np.float32 and reference.shape == (784,)
    assert reference.min() >= 0 and reference.max() == pytest.approx(1, abs=0.05)
    grid = reference.reshape(28, 28)
    assert grid[[0, 1, -2, -1]].max() == 0 and grid[:, [0, 1, -2, -1]].max() == 0  # white on black, margins
    height, width = ink_box(reference)
    assert max(height, width) in (19, 20) and min(height, width) <= 20
    assert np.allclose(centre_of_mass(reference), (14, 14), atol=1)
    assert ((reference > 0.2) & (reference < 0.8)).sum() >= 10  # antialiased edges, as in MNIST


def test_transparent_and_dark_backgrounds_give_the_same_digit(reference: np.ndarray) -> None:
    canvas = drawing(paper=(0, 0, 0, 0), ink=(0, 0, 0, 255), mode="RGBA")  # a web canvas: black on transparent
    np.testing.assert_allclose(decode_png(png(canvas)), reference, atol=1e-6)
    np.testing.assert_allclose(decode_png(png(drawing(paper=(0, 0), ink=(0, 255), mode="LA"))), reference, atol=1e-6)
    dark = decode_png(png(drawing(paper="black", ink="white")))
    assert np.abs(dark - reference).max() < 0.02


def test_grey_paper_and_grey_ink_of_a_photo_are_stretched(reference: np.ndarray) -> None:
    photo = decode_png(png(drawing(paper=(175, 170, 160), ink=(70, 70, 80))))
    assert np.abs(photo - reference).mean() < 0.01 and photo.max() == pytest.approx(1, abs=0.05)


def test_upscaled_mnist_digits_normalise_back_to_the_originals(mnist: ImageData) -> None:
    # A wrong pipeline fails this: a 19 or 21 px box gives a mean near 0.045, a 1 px shift 0.064.
    digits = mnist.test_images[:20].numpy()
    errors = []
    for digit in digits:
        paper = Image.fromarray(np.round(255 - digit.reshape(28, 28) * 255).astype(np.uint8))  # dark on light
        big = paper.resize((280, 280), Image.Resampling.NEAREST)
        errors.append(np.abs(decode_png(png(big)) - digit).mean())
    assert np.mean(errors) < 0.025 and max(errors) < 0.08, errors


def wide(mode: str) -> Image.Image:
    grey = np.asarray(drawing().convert("L"), dtype=np.float64) / 255
    if mode == "I;16":
        return Image.fromarray(np.round(grey * 65535).astype(np.uint16))
    if mode == "I":
        return Image.fromarray(np.round(grey * 65535).astype(np.int32))
    return Image.fromarray(grey.astype(np.float32))


# id: (make the image, format to save it in, mode Pillow reads back from the file)
FORMATS: dict[str, tuple[Callable[[], Image.Image], str, str]] = {
    "L": (lambda: drawing().convert("L"), "PNG", "L"),
    "1": (lambda: drawing().convert("1"), "PNG", "1"),
    "RGB": (drawing, "PNG", "RGB"),
    "RGBA": (lambda: drawing().convert("RGBA"), "PNG", "RGBA"),
    "LA": (lambda: drawing().convert("LA"), "PNG", "LA"),
    "P": (lambda: drawing().convert("P"), "PNG", "P"),
    "P-transparent": (lambda: drawing(paper=(0, 0, 0, 0), ink=(0, 0, 0, 255), mode="RGBA").convert("P"), "PNG", "P"),
    "I;16": (lambda: wide("I;16"), "PNG", "I;16"),
    "I": (lambda: wide("I"), "TIFF", "I"),
    "F": (lambda: wide("F"), "TIFF", "F"),
    "JPEG": (drawing, "JPEG", "RGB"),
    "CMYK": (lambda: drawing().convert("CMYK"), "JPEG", "CMYK"),
    "JPEG-big": (lambda: drawing(scale=4), "JPEG", "RGB"),  # decoded at a reduced scale (draft)
    "GIF": (drawing, "GIF", "P"),
    "WEBP": (drawing, "WEBP", "RGB"),
}


@pytest.mark.parametrize(("make", "format", "stored"), list(FORMATS.values()), ids=list(FORMATS))
def test_modes_and_formats_decode_to_the_same_digit(
    make: Callable[[], Image.Image], format: str, stored: str, reference: np.ndarray
) -> None:
    data = png(make(), format)
    assert Image.open(io.BytesIO(data)).mode == stored  # the mode under test really is the one in the file
    lossy = format in ("JPEG", "WEBP")
    assert np.abs(decode_png(data) - reference).mean() < (0.02 if lossy else 1e-6)


def test_sideways_phone_photo_is_turned_upright_by_its_exif_orientation() -> None:
    upright = drawing()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    np.testing.assert_allclose(decode_png(png(stored, exif=exif)), decode_png(png(upright)), atol=1e-6)


@pytest.mark.parametrize("size", [(28, 28), (200, 150)])
@pytest.mark.parametrize("paper", ["white", "black"])
def test_a_blank_page_gives_zeros(size: tuple[int, int], paper: str) -> None:
    blank = decode_png(png(Image.new("RGB", size, paper)))
    assert blank.shape == (784,) and not blank.any()


def bad_checksum() -> bytes:
    data = bytearray(png(drawing()))
    data[19] ^= 1  # the width in the IHDR chunk: its CRC no longer matches
    return bytes(data)


def bomb() -> bytes:
    data = png(Image.new("1", (6000, 6000)))  # 36 million pixels in a few KB
    assert len(data) < 20_000 and MAX_PIXELS < 6000 * 6000
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (np.random.default_rng(0).bytes(2000), r"not a decodable image \(unrecognised format\)"),
        (b"a digit, honestly: 7\n", r"not a decodable image \(unrecognised format\)"),
        (png(drawing())[:600], "not a decodable image"),
        (png(drawing())[:40], "not a decodable image"),
        (bad_checksum(), "not a decodable image"),
        (bomb(), "too large: 6000x6000"),
    ],
    ids=["empty", "random", "text", "truncated", "header-only", "bad-checksum", "bomb"],
)
def test_bad_bytes_raise_image_decode_error_only(data: bytes, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message) as caught:
        decode_png(data)
    assert isinstance(caught.value, ValueError)


def test_encode_png_is_an_8_bit_greyscale_28x28_png() -> None:
    image = Image.open(io.BytesIO(encode_png(np.linspace(0, 1, 784))))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (28, 28))
    assert np.asarray(image)[0, 0] == 0 and np.asarray(image)[-1, -1] == 255
    with pytest.raises(ValueError, match="784"):
        encode_png(np.zeros(100))


def pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("L"))


def test_comparison_png_puts_originals_above_reconstructions() -> None:
    originals, reconstructions = np.zeros((20, 784), np.float32), np.zeros((20, 784), np.float32)
    originals[10, 5 * 28 + 7] = 1  # image 10 is in chunk 1, column 2; pixel at row 5, column 7
    reconstructions[10, 6 * 28 + 9] = 1
    image = pixels(comparison_png(originals, reconstructions, columns=8, scale=2))
    chunk = 2 * 28 + SEPARATOR  # one pair of rows and the separator below it, unscaled
    assert image.shape == ((3 * 2 * 28 + 2 * SEPARATOR) * 2, 8 * 28 * 2)
    top, left = chunk * 2, 2 * 28 * 2
    assert (image[top + 10 : top + 12, left + 14 : left + 16] == 255).all()  # the original, upscaled 2x2
    assert (image[top + 56 + 12 : top + 56 + 14, left + 18 : left + 20] == 255).all()  # its reconstruction below
    assert (image == 255).sum() == 8
    assert (image[2 * 28 * 2 : chunk * 2] == round(SEPARATOR_GREY * 255)).all()  # light separator
    assert pixels(comparison_png(originals[:3], reconstructions[:3], scale=1)).shape == (56, 3 * 28)
    with pytest.raises(ValueError, match="reconstructions"):
        comparison_png(originals, reconstructions[:5])


def test_grid_png_lays_out_columns_per_row() -> None:
    images = np.zeros((5, 784), np.float32)
    images[4, 0] = 1  # row 1, column 1
    image = pixels(grid_png(images, columns=3, scale=1))
    assert image.shape == (56, 84) and image[28, 28] == 255 and (image == 255).sum() == 1
    assert pixels(grid_png(images.reshape(5, 28, 28), columns=16, scale=3)).shape == (84, 5 * 84)
    with pytest.raises(ValueError):
        grid_png(np.zeros((0, 784)))


def test_scatter_png_is_deterministic_and_shows_highlights() -> None:
    rng = np.random.default_rng(0)
    points, labels = rng.normal(size=(300, 2)), rng.integers(0, 10, size=300)
    first = scatter_png(points, labels, title="latent space")
    assert first == scatter_png(points, labels, title="latent space")
    image = Image.open(io.BytesIO(first))
    assert (image.format, image.size) == ("PNG", (700, 600))
    starred = scatter_png(points, labels, highlights=np.array([[0.0, 0.0], [1.0, -1.0]]), title="latent space")
    assert starred != first and Image.open(io.BytesIO(starred)).size == (700, 600)


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "ICO", "PCX"])
def test_formats_beyond_those_of_digits_are_refused_unread(fmt: str) -> None:
    """Pillow could read these (EPS through Ghostscript, if installed): the service does not try."""
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 0).convert("RGB" if fmt in ("EPS", "ICO") else "L").save(buffer, format=fmt)
    with pytest.raises(ImageDecodeError, match=r"unrecognised format\): send PNG, JPEG"):
        decode_png(buffer.getvalue())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_the_formats_of_digits_are_read(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buffer, format=fmt)
    assert decode_png(buffer.getvalue()).shape == (784,)
