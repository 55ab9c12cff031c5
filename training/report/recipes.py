"""The report's comparison of the two recipes, from a second store of reference-recipe runs.

Those runs take about an hour to train and are not shipped, so a report regenerated without them
(a fresh clone) keeps the section and its figure as they are, as long as it reports on the same
checkpoints; for any others it refuses rather than drop the section or its figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from training.data import ImageData
from training.report.charts import log_mse_axis
from training.report.figures import new_figure
from training.report.markdown import figure_file, mse, table
from training.report.results import ModelResult
from training.report.sources import ReportError, Run

FIGURE = figure_file("recipes")
HEADING = "## Recipes compared"
# From the heading to the next section of the same level, or to the end of the report.
SECTION = re.compile(rf"^{re.escape(HEADING)}$.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def mean_image_mse(data: ImageData) -> float:
    """Test MSE of always answering the mean training image: a model must beat this to have learnt anything."""
    mean = data.train_images.mean(dim=0)
    return float((data.test_images - mean).square().mean())


def figure(results: Sequence[ModelResult], runs: dict[str, Run], floor: float) -> Figure:
    """Test MSE per epoch of both recipes, one panel per configuration that has both."""
    compared = [r for r in results if r.name in runs]
    columns = min(4, len(compared))
    rows = math.ceil(len(compared) / columns)
    fig = new_figure(3.2 * columns, 2.6 * rows)
    for i, result in enumerate(compared):
        ax = fig.add_subplot(rows, columns, i + 1)
        for label, history, style in (("fast", result.history, "-"), ("reference", runs[result.name].history, "--")):
            ax.plot([h["epoch"] for h in history], [h["test_mse"] for h in history], style, label=label)
        ax.axhline(floor, color="grey", linewidth=0.8, linestyle=":", label="mean image")
        log_mse_axis(ax)
        ax.set_title(result.name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=7)
    fig.supylabel("test MSE (log scale)", fontsize=9)
    return fig


def section(results: Sequence[ModelResult], runs: dict[str, Run], floor: float) -> str:
    compared = [r for r in results if r.name in runs]
    rows = []
    for result in compared:
        fast, reference = result.history[-1]["test_mse"], runs[result.name]
        verdict = "fast" if fast < reference.test_mse else "reference"
        rows.append([
            result.name, str(len(result.history)), mse(fast), str(len(reference.history)), mse(reference.test_mse),
            f"**{verdict}**", "yes" if reference.test_mse >= floor else "no",
        ])  # fmt: skip
    header = ["configuration", "fast: epochs", "fast: test MSE", "reference: epochs", "reference: test MSE"]
    header += ["lower", "reference no better than the mean image"]
    wins = [r.name for r in compared if r.history[-1]["test_mse"] < runs[r.name].test_mse]
    failed = [r.name for r in compared if runs[r.name].test_mse >= floor]
    recipe = next(iter(runs.values())).metadata["recipe"]
    lines = [
        f"- The fast recipe ends with the lower test MSE in {len(wins)} of {len(compared)} configurations.",
        f"- Always answering the mean training image gives a test MSE of {mse(floor)}; "
        + (
            f"the reference recipe ends no better than that for {', '.join(failed)}: it did not learn."
            if failed
            else "every reference run ends below it."
        ),
    ]
    return "\n\n".join([
        HEADING,
        f"The report's own recipe (`reference`: Adam lr {recipe['lr']}, batch {recipe['batch_size']}, constant rate, "
        f"{recipe['epochs']} epochs, batches from `{recipe['loader']}`) against the shipped `fast` recipe, "
        "test MSE per epoch.",
        f"![Test MSE per epoch, fast and reference recipes]({FIGURE})",
        table(header, rows),
        "\n".join(lines),
    ])  # fmt: skip


def compares_recipes(out: Path) -> bool:
    """Whether the report in `out` has a "Recipes compared" section (which new checkpoints cannot keep)."""
    readme = out / "README.md"
    return readme.is_file() and SECTION.search(readme.read_text()) is not None


def kept_section(out: Path, provenance: str) -> str | None:
    """The section of the report already in `out`, to keep as it is; None if it has none.

    `provenance` names the checkpoints being reported on, as the report's header does: the
    section is kept only if the report in `out` names the same ones.
    """
    readme = out / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    match = SECTION.search(text)
    if match is None:
        return None
    if provenance not in text:
        raise ReportError(
            f"{readme} compares the recipes for other checkpoints than {provenance}: pass --reference with the "
            "store of reference-recipe runs to recompute that section, or delete it from the file to drop it"
        )
    if not (out / FIGURE).is_file():
        raise ReportError(f"{readme} compares the recipes but {out / FIGURE} is missing: pass --reference to redraw it")
    return match.group(0).rstrip("\n")
