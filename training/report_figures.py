"""The report's figures: matplotlib Figures on the Agg canvas, never pyplot's global state."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter

from training.report_metrics import CLASSES
from training.report_results import Manifold, ModelResult

DPI = 100
SIDE = 28  # MNIST images are 28 x 28
# Dark ink on white reads better on a light page than MNIST's white on black; the gaps
# between digits are NaN, drawn light grey, so neighbouring digits never blend.
INK = colormaps["gray_r"].with_extremes(bad="#c8d0d8")
DIGIT_COLOURS = colormaps["tab10"]


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> None:
    # No "Software" entry (it carries the matplotlib version): the same figure gives the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})


def tile(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Flat 784-pixel images laid out row by row, with NaN gaps between them."""
    rows = math.ceil(len(images) / columns)
    step = SIDE + gap
    canvas = np.full((rows * step - gap, columns * step - gap), np.nan)
    for i, image in enumerate(images):
        top, left = (i // columns) * step, (i % columns) * step
        canvas[top : top + SIDE, left : left + SIDE] = image.reshape(SIDE, SIDE)
    return canvas


def reconstructions(originals: np.ndarray, digits: np.ndarray, rows: dict[str, np.ndarray]) -> Figure:
    """Originals on top, then one row of reconstructions per entry of `rows`, same digits in each."""
    labels = ["original", *rows]
    columns = len(originals)
    figure = new_figure(0.42 * columns + 1.6, 0.42 * len(labels) + 0.6)
    ax = figure.add_subplot()
    ax.imshow(tile(np.concatenate([originals, *rows.values()]), columns), cmap=INK, vmin=0, vmax=1)
    step = SIDE + 2
    ax.set_yticks([i * step + SIDE / 2 for i in range(len(labels))], labels)
    ax.set_xticks([i * step + SIDE / 2 for i in range(columns)], [str(d) for d in digits])
    ax.tick_params(length=0)
    ax.set_frame_on(False)
    return figure


def loss_curves(results: Sequence[ModelResult]) -> Figure:
    """Every configuration on one log-scale plot: colour = configuration, solid = test, dashed = train."""
    figure = new_figure(9, 5)
    ax = figure.add_subplot()
    colours = colormaps["tab10" if len(results) <= 10 else "tab20"]
    for i, result in enumerate(results):
        epochs = [row["epoch"] for row in result.history]
        ax.plot(epochs, [row["test_mse"] for row in result.history], color=colours(i), label=result.name)
        ax.plot(epochs, [row["train_mse"] for row in result.history], color=colours(i), linestyle="--", alpha=0.7)
    styles = [Line2D([], [], color="black", label="test"), Line2D([], [], color="black", linestyle="--", label="train")]
    # Figure legends "outside" the axes: constrained layout makes room for them, so nothing is cut off.
    figure.legend(loc="outside right upper", title="configuration")
    figure.legend(handles=styles, loc="outside right lower")
    _style_loss_axes(ax)
    return figure


def loss_curve(result: ModelResult) -> Figure:
    figure = new_figure(6, 4)
    ax = figure.add_subplot()
    epochs = [row["epoch"] for row in result.history]
    ax.plot(epochs, [row["train_mse"] for row in result.history], linestyle="--", label="train")
    ax.plot(epochs, [row["test_mse"] for row in result.history], label="test")
    ax.legend()
    ax.set_title(result.name)
    _style_loss_axes(ax)
    return figure


def _style_loss_axes(ax: Axes) -> None:
    ax.set_yscale("log")
    # Plain decimals (0.03) on every tick: easier to compare with the tables than 3 x 10^-2.
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE per pixel (log scale)")
    ax.grid(True, which="both", alpha=0.3)


def _digit_handles() -> list[Line2D]:
    # Proxy markers: the scatter is one call with a colour per point, so it has no legend entries.
    return [
        Line2D([], [], marker="o", linestyle="", color=DIGIT_COLOURS(d), markersize=7, label=str(d))
        for d in range(CLASSES)
    ]


def _scatter(ax: Axes, result: ModelResult, size: float) -> None:
    # One call in test-set order (already mixed), so no digit is painted over all the others.
    colours = DIGIT_COLOURS(result.map_labels % CLASSES)
    ax.scatter(result.map_points[:, 0], result.map_points[:, 1], c=colours, s=size, linewidths=0)
    p = result.evaluation.p
    ax.set_title(result.name if p == 2 else f"{result.name} (PCA of the {p}-D codes)", fontsize="medium")
    ax.set_xlabel("z1" if p == 2 else "PC1")
    ax.set_ylabel("z2" if p == 2 else "PC2")


def latent_map(result: ModelResult) -> Figure:
    figure = new_figure(7, 6)
    ax = figure.add_subplot()
    _scatter(ax, result, size=3)
    figure.legend(handles=_digit_handles(), title="digit", loc="outside right center")
    return figure


def latent_maps(results: Sequence[ModelResult], columns: int = 3) -> Figure:
    rows = math.ceil(len(results) / columns)
    figure = new_figure(4 * columns + 0.8, 3.7 * rows)
    for i, result in enumerate(results):
        _scatter(figure.add_subplot(rows, columns, i + 1), result, size=1.5)
    figure.legend(handles=_digit_handles(), title="digit", loc="outside right center")
    return figure


def _draw_manifold(ax: Axes, name: str, manifold: Manifold) -> None:
    steps = len(manifold.z1)
    dz1, dz2 = np.diff(manifold.z1).mean() / 2, -np.diff(manifold.z2).mean() / 2
    extent = (manifold.z1[0] - dz1, manifold.z1[-1] + dz1, manifold.z2[-1] - dz2, manifold.z2[0] + dz2)
    ax.imshow(tile(manifold.images, steps, gap=0), cmap=INK, vmin=0, vmax=1, extent=extent, aspect="auto")
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
