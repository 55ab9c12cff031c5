"""The report's folder: every figure drawn and saved, and figures no longer shown removed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from training.data import ImageData
from training.report import charts, figures
from training.report.markdown import FIGURES, figure_file
from training.report.results import Baselines, ModelResult, sample_indices

log = logging.getLogger(__name__)

Drawings = dict[str, Callable[[], Figure]]  # figure path relative to the report -> what draws it


def sample_digits(data: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """The test images every reconstruction figure shows, and their digits."""
    indices = sample_indices(data.test_labels.numpy())
    return data.test_images.cpu().numpy()[indices], data.test_labels.numpy()[indices]


def model_drawings(result: ModelResult, originals: np.ndarray, digits: np.ndarray) -> Drawings:
    """The figures of one configuration alone."""
    own = {result.name: result.evaluation.samples}
    drawings: Drawings = {
        figure_file("reconstructions", result.name): partial(figures.reconstructions, originals, digits, own),
        figure_file("loss", result.name): partial(charts.loss_curve, result),
        figure_file("latent", result.name): partial(charts.latent_map, result),
    }
    if result.manifold is not None:
        drawings[figure_file("manifold", result.name)] = partial(figures.manifold, result.name, result.manifold)
    return drawings


def drawings(results: Sequence[ModelResult], baselines: Baselines, data: ImageData) -> Drawings:
    """Every figure of the report but the recipe comparison: the shared ones, then each configuration's."""
    originals, digits = sample_digits(data)
    rows = {r.name: r.evaluation.samples for r in results} | {b.label: b.samples for b in baselines.values()}
    grids = {r.name: r.manifold for r in results if r.manifold is not None}
    shared: Drawings = {
        figure_file("reconstructions"): partial(figures.reconstructions, originals, digits, rows),
        figure_file("loss-curves"): partial(charts.loss_curves, results),
        figure_file("latent-maps"): partial(charts.latent_maps, results),
    }
    if grids:
        shared[figure_file("manifolds")] = partial(figures.manifolds, grids)
    for r in results:
        shared |= model_drawings(r, originals, digits)
    return shared


def write_figures(out: Path, draw: Drawings, drawn: dict[str, Figure]) -> set[Path]:
    """Draw and save every figure of `draw`, save the `drawn` ones; returns the files written."""
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    for relative, make in draw.items():
        figures.save(make(), out / relative)
    for relative, figure in drawn.items():
        figures.save(figure, out / relative)
    return {out / relative for relative in [*draw, *drawn]}


def remove_stale(out: Path, keep: set[Path]) -> None:
    """Drop figures of models no longer in the store; only PNGs in the report's own folder."""
    for path in sorted((out / FIGURES).glob("*.png")):
        if path not in keep:
            log.info("removing stale figure %s", path)
            path.unlink()
