"""MNIST images as arrays: their size, and laying many out on one canvas (service figures, the report's)."""

from __future__ import annotations

import numpy as np

SIDE = 28  # MNIST images are 28 x 28
PIXELS = SIDE * SIDE


def tile(images: np.ndarray, columns: int, gap: int = 0, fill: float = 0.0) -> np.ndarray:
    """(N, 784) images -> one 2-D canvas, row by row, `columns` a row, `gap` pixels between neighbours.

    Gaps and the empty cells of a short last row hold `fill` (0: black; NaN: drawn apart by a
    colour map's "bad" colour). The canvas is float32, or float64 for float64 images.
    """
    images = np.asarray(images)
    if columns < 1 or gap < 0:
        raise ValueError(f"columns must be at least 1 and gap at least 0, got {columns} and {gap}")
    rows, step = -(-len(images) // columns), SIDE + gap
    cells = np.full((rows * columns, step, step), fill, dtype=np.result_type(images.dtype, np.float32))
    cells[: len(images), :SIDE, :SIDE] = images.reshape(-1, SIDE, SIDE)
    canvas = cells.reshape(rows, columns, step, step).transpose(0, 2, 1, 3).reshape(rows * step, columns * step)
    return canvas[: rows * step - gap, : columns * step - gap]
