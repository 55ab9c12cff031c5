"""models.images.tile: the one layout of digits on a canvas, for the service's PNGs and the report's figures."""

from __future__ import annotations

import numpy as np
import pytest

from models.images import PIXELS, SIDE, tile


def _digits(count: int) -> np.ndarray:
    return np.stack([np.full(PIXELS, (i + 1) / 10, np.float32) for i in range(count)])


def test_tiles_row_by_row_without_gaps_and_fills_the_empty_cells() -> None:
    canvas = tile(_digits(5), columns=3)
    assert canvas.shape == (2 * SIDE, 3 * SIDE) and canvas.dtype == np.float32
    cell = [[canvas[r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE] for c in range(3)] for r in range(2)]
    for index in range(5):
        assert (cell[index // 3][index % 3] == np.float32((index + 1) / 10)).all()
    assert (cell[1][2] == 0).all()  # the sixth cell: empty, black


def test_keeps_each_image_s_rows_and_columns() -> None:
    image = np.arange(PIXELS, dtype=np.float32)
    np.testing.assert_array_equal(tile(image[None], columns=1), image.reshape(SIDE, SIDE))


def test_gaps_and_empty_cells_hold_the_fill() -> None:
    canvas = tile(_digits(3), columns=2, gap=2, fill=np.nan)
    assert canvas.shape == (2 * SIDE + 2, 2 * SIDE + 2)
    assert np.isnan(canvas[SIDE : SIDE + 2]).all() and np.isnan(canvas[:, SIDE : SIDE + 2]).all()
    assert np.isnan(canvas[SIDE + 2 :, SIDE + 2 :]).all()  # the empty fourth cell
    assert (canvas[SIDE + 2 :, :SIDE] == np.float32(0.3)).all()
    assert tile(_digits(2).astype(np.float64), columns=2).dtype == np.float64


def test_refuses_a_layout_without_columns() -> None:
    with pytest.raises(ValueError, match="columns must be at least 1"):
        tile(_digits(1), columns=0)
