"""PNG files of digits for tests to send: what a client would upload."""

from __future__ import annotations

import numpy as np

from models.images import PIXELS
from service.imaging import grid_png


def encode_png(image: np.ndarray) -> bytes:
    """(784,) or (28, 28) floats in [0, 1] -> an 8-bit greyscale 28x28 PNG."""
    array = np.asarray(image, dtype=np.float32)
    if array.size != PIXELS:
        raise ValueError(f"expected one 28x28 image (784 values), got shape {array.shape}")
    return grid_png(array.reshape(1, PIXELS), columns=1, scale=1)
