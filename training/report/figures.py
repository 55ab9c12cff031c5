"""The report's figures: matplotlib Figures on the Agg canvas, never pyplot's global state.

Here the canvas, saving, and the figures made of digit images (reconstructions, decoded
manifolds); the line and scatter charts are in `charts`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.images import SIDE, tile
from training.report.results import Manifold

DPI = 100
# Dark ink on white reads better on a light page than MNIST's white on black; the gaps
# between digits are NaN, drawn light grey, so neighbouring digits never blend.
INK = colormaps["gray_r"].with_extremes(bad="#c8d0d8")


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> None:
    # No "Software" entry (it carries the matplotlib version): the same figure gives the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})


def _canvas(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Images tiled with NaN gaps (drawn as the colour map's background), on a float64 canvas as always drawn."""
    return tile(np.asarray(images, dtype=np.float64), columns, gap=gap, fill=np.nan)


def reconstructions(originals: np.ndarray, digits: np.ndarray, rows: dict[str, np.ndarray]) -> Figure:
    """Originals on top, then one row of reconstructions per entry of `rows`, same digits in each."""
    labels = ["original", *rows]
    columns = len(originals)
    figure = new_figure(0.42 * columns + 1.6, 0.42 * len(labels) + 0.6)
    ax = figure.add_subplot()
    ax.imshow(_canvas(np.concatenate([originals, *rows.values()]), columns), cmap=INK, vmin=0, vmax=1)
    step = SIDE + 2
    ax.set_yticks([i * step + SIDE / 2 for i in range(len(labels))], labels)
    ax.set_xticks([i * step + SIDE / 2 for i in range(columns)], [str(d) for d in digits])
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    return figure


def _draw_manifold(ax: Axes, name: str, manifold: Manifold) -> None:
    steps = len(manifold.z1)
    dz1, dz2 = np.diff(manifold.z1).mean() / 2, -np.diff(manifold.z2).mean() / 2
    extent = (manifold.z1[0] - dz1, manifold.z1[-1] + dz1, manifold.z2[-1] - dz2, manifold.z2[0] + dz2)
    ax.imshow(_canvas(manifold.images, steps, gap=0), cmap=INK, vmin=0, vmax=1, extent=extent, aspect="auto")
    ax.set_title(name, fontsize="medium")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")


def manifold(name: str, grid: Manifold) -> Figure:
    figure = new_figure(6.5, 6.5)
    _draw_manifold(figure.add_subplot(), name, grid)
    return figure


def manifolds(grids: dict[str, Manifold], columns: int = 2) -> Figure:
    rows = math.ceil(len(grids) / columns)
    figure = new_figure(5 * columns, 5 * rows)
    for i, (name, grid) in enumerate(grids.items()):
        _draw_manifold(figure.add_subplot(rows, columns, i + 1), name, grid)
    return figure
