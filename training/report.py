"""ae-report: the experiment report, regenerated from the checkpoint store.

Reports on the latest valid version of each model: a README.md (GitHub Markdown) and its
PNG figures in one folder. The same checkpoints give the same files, byte for byte.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from matplotlib.figure import Figure

from models import CONFIGS, Checkpoint, CheckpointError, CheckpointStore
from training import report_figures as figures
from training import report_recipes
from training.data import DATA_DIR_ENV, DATASETS, DataNotFoundError, ImageData, default_data_dir, load_images
from training.report_format import FIGURES, figure_file
from training.report_latent import confusions, latent_maps
from training.report_metrics import fit_linear_autoencoders
from training.report_results import ModelResult, evaluate_linear, evaluate_model, sample_indices
from training.report_sections import Baselines, losses, reconstructions, summary

log = logging.getLogger(__name__)


class ReportError(RuntimeError):
    pass


def ordered_names(names: Sequence[str]) -> list[str]:
    """The registry's order (the reference report's), then any other names alphabetically."""
    return [n for n in CONFIGS if n in names] + sorted(n for n in names if n not in CONFIGS)


def latest_checkpoints(store: CheckpointStore, dataset: str) -> list[Checkpoint]:
    checkpoints = []
    for name in ordered_names(store.names()):
        try:
            checkpoint = store.load_latest(name)
        except CheckpointError as e:
            log.warning("leaving %s out of the report: %s", name, e)
            continue
        if checkpoint.metadata["dataset"]["name"] != dataset:
            log.info("leaving %s out of the report: trained on %s", name, checkpoint.metadata["dataset"]["name"])
            continue
        checkpoints.append(checkpoint)
    return checkpoints


def data_for(checkpoints: Sequence[Checkpoint], data: ImageData) -> ImageData:
    """The images the checkpoints were trained and tested on: the first N of each split."""
    datasets = [c.metadata["dataset"] for c in checkpoints]
    for checkpoint, recorded in zip(checkpoints, datasets, strict=True):
        if recorded.get("sha256") != data.sha256:
            log.warning("%s was trained on other %s files than the ones loaded", checkpoint.name, data.name)
    # Normally every checkpoint used the whole set; where they differ, the largest covers them all.
    return data.subset(max(d["train_images"] for d in datasets), max(d["test_images"] for d in datasets))


def write_figures(
    results: Sequence[ModelResult], baselines: Baselines, data: ImageData, out: Path, extra: dict[str, Figure]
) -> set[Path]:
    """Draw and save every figure (and the `extra` ones, already drawn); returns the files written."""
    indices = sample_indices(data.test_labels.numpy())
    originals, digits = data.test_images.cpu().numpy()[indices], data.test_labels.numpy()[indices]
    rows = {r.name: r.evaluation.samples for r in results} | {b.label: b.samples for b in baselines.values()}
    grids = {r.name: r.manifold for r in results if r.manifold is not None}
    drawings: dict[str, Callable[[], Figure]] = {
        figure_file("reconstructions"): partial(figures.reconstructions, originals, digits, rows),
        figure_file("loss-curves"): partial(figures.loss_curves, results),
        figure_file("latent-maps"): partial(figures.latent_maps, results),
    }
    if grids:
        drawings[figure_file("manifolds")] = partial(figures.manifolds, grids)
    for r in results:
        own = {r.name: r.evaluation.samples}
        drawings[figure_file("reconstructions", r.name)] = partial(figures.reconstructions, originals, digits, own)
        drawings[figure_file("loss", r.name)] = partial(figures.loss_curve, r)
        drawings[figure_file("latent", r.name)] = partial(figures.latent_map, r)
        if r.manifold is not None:
            drawings[figure_file("manifold", r.name)] = partial(figures.manifold, r.name, r.manifold)
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    for relative, draw in drawings.items():
        figures.save(draw(), out / relative)
    for relative, figure in extra.items():
        figures.save(figure, out / relative)
    return {out / relative for relative in [*drawings, *extra]}


def remove_stale(out: Path, keep: set[Path]) -> None:
    """Drop figures of models no longer in the store; only PNGs in the report's own folder."""
    for path in sorted((out / FIGURES).glob("*.png")):
        if path not in keep:
            log.info("removing stale figure %s", path)
            path.unlink()


def header(
    results: Sequence[ModelResult], data: ImageData, source: str, compare: bool, reference_source: str | None
) -> str:
    """`compare`: a section compares the recipes, with runs from the store `reference_source` if known."""
    versions = ", ".join(f"{r.name} v{r.version}" for r in results)
    command = f"ae-report --store {source}"
    if compare and reference_source:
        command += f" --reference {reference_source}"
    return "\n\n".join([
        "# Experiment report",
        f"Generated by `ae-report` from the latest version of each model in the checkpoint store `{source}` "
        f"({versions}): {len(results)} configurations on {data.name}, {len(data.train_labels):,} training and "
        f"{len(data.test_labels):,} test images. The same checkpoints give the same report, byte for byte; "
        f"regenerate it with `{command}`.",
        "Contents: [Summary](#summary) · [Reconstructions](#reconstructions) · [Loss curves](#loss-curves) · "
        "[Latent maps](#latent-maps) · [Confusions](#confusions)"
        + (" · [Recipes compared](#recipes-compared)" if compare else ""),
    ])  # fmt: skip


def build_report(
    checkpoints: Sequence[Checkpoint],
    data: ImageData,
    out: Path,
    source: str,
    reference: dict[str, report_recipes.Run] | None = None,
    reference_source: str | None = None,
) -> Path:
    """Evaluate `checkpoints` on `data` (a subset is fine), write README.md and figures into `out`.

    With `reference` runs of the same configurations (from the store `reference_source`), a
    section compares the two recipes.
    """
    if not checkpoints:
        raise ReportError(f"no valid checkpoints of {data.name} in {source}")
    results = [evaluate_model(c, data) for c in checkpoints]
    sizes = sorted({r.evaluation.p for r in results})
    linear = fit_linear_autoencoders(data.train_images.cpu().numpy(), sizes)
    baselines: Baselines = {(data.name, p): evaluate_linear(linear[p], data) for p in sizes}
    out.mkdir(parents=True, exist_ok=True)
    extra_figures, extra_sections = {}, []
    if reference and any(r.name in reference for r in results):
        floor = report_recipes.mean_image_mse(data)
        extra_figures[report_recipes.FIGURE] = report_recipes.figure(results, reference, floor)
        extra_sections.append(report_recipes.section(results, reference, floor))
    remove_stale(out, write_figures(results, baselines, data, out, extra_figures))
    sections = [
        header(results, data, source, bool(extra_sections), reference_source),
        summary(results, baselines),
        reconstructions(results, baselines),
        losses(results),
        latent_maps(results, baselines),
        confusions(results, baselines),
        *extra_sections,
    ]
    readme = out / "README.md"
    readme.write_text("\n\n".join(sections) + "\n")
    return readme


def generate_report(
    store: Path,
    out: Path,
    data_dir: Path | None = None,
    download: bool = True,
    dataset: str = "mnist",
    reference_store: Path | None = None,
) -> Path:
    """The whole report for a store: what `ae-report` and `ae-train --all` run."""
    started = time.monotonic()
    checkpoints = latest_checkpoints(CheckpointStore(store), dataset)
    if not checkpoints:
        raise ReportError(f"no valid checkpoints of {dataset} in {store}")
    data = data_for(checkpoints, load_images(dataset, data_dir or default_data_dir(), download))
    reference = None
    if reference_store is not None:
        reference = report_recipes.reference_runs(CheckpointStore(reference_store), [c.name for c in checkpoints])
        log.info("reference-recipe runs from %s: %s", reference_store, ", ".join(reference) or "none")
    reference_source = str(reference_store) if reference_store is not None else None
    readme = build_report(checkpoints, data, out, str(store), reference, reference_source)
    log.info("report of %d models written to %s in %.1f s", len(checkpoints), readme, time.monotonic() - started)
    return readme


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ae-report", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("checkpoints"), help="checkpoint store")
    parser.add_argument("--out", type=Path, default=Path("docs/report"), help="report folder (default: docs/report)")
    parser.add_argument("--data-dir", type=Path, help=f"data root (default: ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")
    parser.add_argument("--dataset", default="mnist", choices=list(DATASETS), help="report on models of this data set")
    parser.add_argument("--reference", type=Path, help="a store of reference-recipe runs to compare the recipes with")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        generate_report(args.store, args.out, args.data_dir, not args.no_download, args.dataset, args.reference)
    except (DataNotFoundError, CheckpointError, ReportError) as e:
        parser.exit(1, f"ae-report: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
