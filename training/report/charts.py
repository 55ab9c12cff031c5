"""The report's charts: loss curves per epoch and latent maps (test codes coloured by digit)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter

from training.report.figures import new_figure
from training.report.metrics import CLASSES
from training.report.results import ModelResult

DIGIT_COLOURS = colormaps["tab10"]


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


def log_mse_axis(ax: Axes) -> None:
    """A log-scale y axis labelled in plain decimals (0.03): easier to compare with the tables than 3 x 10^-2."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))


def _style_loss_axes(ax: Axes) -> None:
    log_mse_axis(ax)
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
