"""ae-train: train named configurations and publish them as checkpoint versions."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from models import CONFIGS, CheckpointStore, UnknownConfigError, get_config
from models.device import DEVICE_CHOICES, resolve_device
from training.data import DATA_DIR_RULE, DATASETS, DataNotFoundError, default_data_dir, load_images
from training.loop import TrainingDiverged, TrainingInterrupted, fit
from training.publish import publish
from training.recipes import LOADERS, RECIPES, get_recipe
from training.report import generate_report
from training.report.recipes import compares_recipes

log = logging.getLogger("training")
STATE_FOLDER = ".train-state"  # inside the store; hidden, so never taken for a model
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)


class Interrupted(Exception):
    """Ctrl-C, with what the user needs to know: how far it got and how to go on."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ae-train", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", action="append", metavar="NAME", help=f"one of: {', '.join(CONFIGS)}")
    which.add_argument("--all", action="store_true", help="every configuration of the report")
    parser.add_argument("--recipe", default="fast", choices=list(RECIPES), help="default: fast")
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument("--loader", choices=LOADERS, help="override how batches are made: same recipe, different speed")
    parser.add_argument("--dataset", default="mnist", choices=list(DATASETS))
    parser.add_argument("--data-dir", type=Path, help=f"data root (default: {DATA_DIR_RULE})")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")
    parser.add_argument("--store", type=Path, default=Path("checkpoints"), help="checkpoint store")
    parser.add_argument("--name", help="store name for one --config (default: the config, plus -DATASET if not mnist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test images only")
    parser.add_argument("--restart", action="store_true", help="ignore a saved run and start from epoch 1")
    promotion = parser.add_mutually_exclusive_group()  # publishing alone never moves `stable`
    promotion.add_argument("--promote", action="store_true", help="make each new version the stable one")
    promotion.add_argument(
        "--promote-if-better", action="store_true", help="make a new version stable if its test MSE is not worse"
    )
    parser.add_argument("--dry-run", action="store_true", help="one epoch on 2,048 images, publish nothing")
    parser.add_argument(
        "--report-dir", type=Path, default=Path("docs/report"), help="where --all writes the report (docs/report)"
    )
    parser.add_argument(
        "--reference", type=Path, help="a store of reference-recipe runs for --all's report to compare the recipes with"
    )
    return parser


def store_name(config_name: str, dataset: str) -> str:
    return config_name if dataset == "mnist" else f"{config_name}-{dataset}"


def _how_to_go_on(stop: TrainingInterrupted, dry_run: bool, published: list[str], left: list[str]) -> str:
    """One line: where the run stopped, what is saved, and the command that resumes it."""
    if dry_run:
        return f"interrupted the dry run of {stop.label}; a dry run saves nothing"
    where = f"interrupted after epoch {stop.saved_epochs} of {stop.epochs} of {stop.label}"
    if not published:
        return f"{where}; run the same command again to resume"
    configs = " ".join(f"--config {name}" for name in left)
    return f"{where} ({', '.join(published)} published); to resume the rest, run it again with only {configs}"


def _write_report(args: argparse.Namespace, store: Path, data_dir: Path) -> None:
    try:
        readme = generate_report(store, args.report_dir, data_dir, not args.no_download, args.dataset, args.reference)
    except KeyboardInterrupt:
        command = ["ae-report", "--store", str(store), "--out", str(args.report_dir), "--dataset", args.dataset]
        command += ["--reference", str(args.reference)] if args.reference else []
        message = (
            f"interrupted while writing the report; every model is published; to write it, run {shlex.join(command)}"
        )
        raise Interrupted(message) from None
    log.info("report written to %s", readme)


def run(args: argparse.Namespace) -> int:
    names = list(CONFIGS) if args.all else args.config
    configs = {name: get_config(name) for name in names}
    if args.name and len(names) != 1:
        raise ValueError("--name needs exactly one --config")
    if args.all and not args.dry_run and args.reference is None and compares_recipes(args.report_dir):
        # Checked before hours of training: the report of the new versions could not keep that section.
        raise ValueError(
            f"{args.report_dir / 'README.md'} compares the recipes: pass --reference STORE (the reference-recipe "
            "runs) to redraw that section for the new versions, or --report-dir to write the report elsewhere"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data_dir = args.data_dir or default_data_dir(args.dataset)
    data = load_images(args.dataset, data_dir, download=not args.no_download)
    train_limit, test_limit = (2048, 1000) if args.dry_run else (args.train_limit, args.test_limit)
    if train_limit or test_limit:
        data = data.subset(train_limit, test_limit)
    data = data.to(device)
    store = CheckpointStore(args.store)
    published: list[str] = []
    for config_name, config in configs.items():
        recipe = get_recipe(args.recipe, config_name).with_epochs(1 if args.dry_run else args.epochs)
        recipe = recipe.with_loader(args.loader)
        name = args.name or store_name(config_name, args.dataset)
        state_path = store.root / STATE_FOLDER / f"{name}-{recipe.name}-e{recipe.epochs}-s{args.seed}.pt"
        if args.restart or args.dry_run:
            state_path.unlink(missing_ok=True)
        log.info("%s: %s recipe, %d epochs, %s on %s", name, recipe.name, recipe.epochs, args.dataset, device)
        try:
            trained = fit(
                config, data, recipe, seed=args.seed, device=device,
                state_path=None if args.dry_run else state_path, label=name,
            )  # fmt: skip
        except TrainingInterrupted as stop:
            raise Interrupted(_how_to_go_on(stop, args.dry_run, published, list(configs)[len(published) :])) from None
        final = trained.history[-1]
        if args.dry_run:
            log.info("%s: dry run done, test MSE %.5f; nothing published", name, final["test_mse"])
            continue
        version = publish(store, name, config_name, trained, data, recipe, args.seed, promote=args.promote)
        if args.promote_if_better:
            promote_if_better(store, name, version)
        state_path.unlink(missing_ok=True)
        published.append(config_name)
        log.info(
            "%s: published version %d (%s), test MSE %.5f, %.0f s",
            name, version, store.path(name, version), final["test_mse"], trained.train_seconds,
        )  # fmt: skip
    if args.all and not args.dry_run:  # every configuration is fresh: regenerate the report from the store
        _write_report(args, store.root, data_dir)
    return 0


def promote_if_better(store: CheckpointStore, name: str, version: int) -> bool:
    """Make `version` stable if its test MSE is not worse than the stable version's; says which it did."""
    stable = store.stable(name)
    new = store.load(name, version).metadata["metrics"]["test_mse"]
    old = store.load(name, stable).metadata["metrics"]["test_mse"] if stable not in (None, version) else None
    if old is not None and new > old:
        log.info("%s: kept stable version %d (test MSE %.5f): version %d's %.5f is worse",
                 name, stable, old, version, new)  # fmt: skip
        return False
    store.promote(name, version, "ae-train --promote-if-better")
    log.info("%s: version %d is now stable (test MSE %.5f, stable had %s)", name, version, new,
             "none" if old is None else f"{old:.5f}")  # fmt: skip
    return True


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (DataNotFoundError, UnknownConfigError, TrainingDiverged, ValueError, RuntimeError) as e:
        parser.exit(1, f"ae-train: error: {e}\n")
    except Interrupted as e:
        parser.exit(INTERRUPTED, f"ae-train: {e}\n")
    except KeyboardInterrupt:  # before training (loading data) or while publishing: the saved state is intact
        parser.exit(INTERRUPTED, "ae-train: interrupted; run the same command again to resume\n")


if __name__ == "__main__":
    sys.exit(main())
