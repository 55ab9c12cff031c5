"""Training speed and time-to-quality, every variant measured side by side in one process.

Seconds per epoch of the reference recipe with the report's torchvision DataLoader and with
in-memory batches, and of the fast recipe, taken in interleaved rounds (DataLoader, in-memory,
fast, DataLoader, ...) and reported as medians. Then the fast recipe's time to reach the
reference recipe's 100-epoch test MSE, against the reference's own time to finish with the
DataLoader (100 x its median seconds per epoch):

- `--budget full`: the fast run of the rounds goes on until its test MSE reaches the reference's;
  its wall time is the sum of its epochs' seconds (each includes the test evaluation, as in `ae-train`).
- `--budget short`: no further training; the epoch at which the shipped fast checkpoint (same
  recipe and seed) reached the reference MSE, from its history.csv, times this run's median
  seconds per fast epoch.

The reference's 100-epoch test MSE comes from finished reference-recipe runs in `--reference-store`
(`ae-train --recipe reference --store runs/reference`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import REPO, Table, base_parser, default_data_dir, emit, fmt, machine, median, ratio, report
from models import CONFIGS, Autoencoder, AutoencoderConfig, CheckpointStore, get_config
from models.device import DEVICE_CHOICES, resolve_device
from training.data import ImageData, load_images
from training.loop import batches, evaluate, fit, reconstruction_loss, scheduler_for  # the trainer's own batches
from training.recipes import Recipe, get_recipe

TARGET_FRACTION = 0.1  # the target: fast time-to-quality <= 1/10 of the reference's DataLoader time
VARIANTS = ("reference, DataLoader", "reference, in memory", "fast")


class EpochRunner:
    """`training.loop.fit`, one epoch per `step()`, so that a run can stop once it reaches a target."""

    def __init__(self, config: AutoencoderConfig, data: ImageData, recipe: Recipe, seed: int, device: torch.device):
        torch.manual_seed(seed)
        self.data, self.recipe, self.seed, self.device = data, recipe, seed, device
        self.model = Autoencoder(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=recipe.lr)
        steps = math.ceil(len(data.train_images) / recipe.batch_size)
        self.scheduler = scheduler_for(self.optimizer, recipe, recipe.epochs * steps)
        self.history: list[dict[str, float]] = []

    def step(self) -> dict[str, float]:
        epoch = len(self.history) + 1
        started = time.monotonic()
        self.model.train()
        total = torch.zeros((), device=self.device)
        for images in batches(self.data, self.recipe, self.seed, epoch, self.device):
            self.optimizer.zero_grad(set_to_none=True)
            loss = reconstruction_loss(self.model, images)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.detach() * len(images)
        train_mse = total.item() / len(self.data.train_images)
        test_mse = evaluate(self.model, self.data.test_images)
        row = {"epoch": epoch, "train_mse": train_mse, "test_mse": test_mse, "seconds": time.monotonic() - started}
        self.history.append(row)
        return row


def check_runner_matches_fit(config: AutoencoderConfig, data: ImageData, device: torch.device) -> None:
    """The bench's epoch loop must be the trainer's: same seed, same test MSE, both loaders."""
    for recipe in (get_recipe("fast").with_epochs(2), get_recipe("reference").with_epochs(1)):
        expected = [row["test_mse"] for row in fit(config, data, recipe, device=device).history]
        runner = EpochRunner(config, data, recipe, 0, device)
        got = [runner.step()["test_mse"] for _ in expected]
        if got != expected:
            raise RuntimeError(f"EpochRunner drifted from training.loop.fit ({recipe.loader}): {got} != {expected}")


@dataclass
class Reference:
    test_mse: float
    source: str


def reference_result(store: Path, config_name: str) -> Reference | None:
    """The finished reference-recipe run of `config_name` (latest version) in `store`, if there is one."""
    versions = CheckpointStore(store).versions(config_name)
    if not versions:
        return None
    path = CheckpointStore(store).path(config_name, max(versions))
    meta = json.loads((path / "model.json").read_text())
    recipe = meta.get("recipe", {})
    if recipe.get("name") != "reference" or meta.get("epochs") != get_recipe("reference").epochs:
        return None
    return Reference(
        float(meta["metrics"]["test_mse"]), str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    )


def shipped_crossing(store: Path, config_name: str, target: float, seed: int) -> int | None:
    """The first epoch at which the shipped fast run reached `target`, if it used this exact recipe and seed."""
    for version in reversed(CheckpointStore(store).versions(config_name)):
        path = CheckpointStore(store).path(config_name, version)
        meta = json.loads((path / "model.json").read_text())
        if meta.get("recipe") != get_recipe("fast", config_name).to_dict() or meta.get("seed") != seed:
            continue
        with open(path / "history.csv", newline="") as f:
            for row in csv.DictReader(f):
                if float(row["test_mse"]) <= target:
                    return int(row["epoch"])
        return None
    return None


def measure(
    name: str, data: ImageData, args: argparse.Namespace, device: torch.device, reference: Reference | None
) -> dict[str, Any]:
    config = get_config(name)
    recipes = (
        get_recipe("reference", name),
        get_recipe("reference", name).with_loader("tensor"),
        get_recipe("fast", name),
    )
    runners = [EpochRunner(config, data, recipe, args.seed, device) for recipe in recipes]
    for round_ in range(args.repeats):
        for variant, runner in zip(VARIANTS, runners, strict=True):
            row = runner.step()
            emit(f"{name} round {round_ + 1}: {variant} {row['seconds']:.2f} s, test MSE {row['test_mse']:.5f}")
    seconds = {v: median(row["seconds"] for row in r.history) for v, r in zip(VARIANTS, runners, strict=True)}
    if args.smoke:  # no 100-epoch reference on a subset: its own test MSE after the rounds stands in
        reference = Reference(runners[0].history[-1]["test_mse"], "the smoke run's own reference-recipe rounds")
    result: dict[str, Any] = {"config": name, "seconds_per_epoch": seconds, "reference": reference}
    if reference is None:
        return result
    fast = runners[2]
    crossing = next((r["epoch"] for r in fast.history if r["test_mse"] <= reference.test_mse), None)
    if args.budget == "full" or args.smoke:
        while crossing is None and len(fast.history) < fast.recipe.epochs:
            row = fast.step()
            crossing = row["epoch"] if row["test_mse"] <= reference.test_mse else None
        reached = None if crossing is None else sum(r["seconds"] for r in fast.history[: int(crossing)])
        how = "measured"
    else:
        crossing = shipped_crossing(args.store, name, reference.test_mse, args.seed)
        reached = None if crossing is None else crossing * seconds["fast"]
        how = "shipped history x median s/epoch"
    result.update(
        crossing=crossing,
        fast_epochs=fast.recipe.epochs,
        fast_seconds_to_reach=reached,
        fast_estimate=None if crossing is None else crossing * seconds["fast"],
        reference_dataloader_seconds=get_recipe("reference", name).epochs * seconds[VARIANTS[0]],
        how=how,
    )
    return result


def tables(results: list[dict[str, Any]], args: argparse.Namespace) -> list[Table]:
    epochs = Table(
        f"Seconds per epoch (median of {args.repeats} interleaved epochs; {args.threads} torch thread(s))",
        ["configuration", *(f"{v} (s)" for v in VARIANTS), "DataLoader / in memory", "DataLoader / fast"],
        notes=["Each epoch includes the test evaluation on all test images, as `ae-train` times it."],
    )
    quality = Table(
        "Time to quality: the fast recipe until it reaches the reference recipe's 100-epoch test MSE",
        ["configuration", "reference test MSE", "reference 100 epochs, DataLoader (s)", "fast: epoch reached",
         "fast: time to reach (s)", "fast / reference", f"target <= {TARGET_FRACTION:g}"],
    )  # fmt: skip
    for r in results:
        s = r["seconds_per_epoch"]
        dl, mem, fast = (s[v] for v in VARIANTS)
        epochs.add(
            r["config"], fmt(dl, 2), fmt(mem, 2), fmt(fast, 2), f"{ratio(dl, mem):.2f}x", f"{ratio(dl, fast):.1f}x"
        )
        ref: Reference | None = r["reference"]
        if ref is None:
            quality.add(r["config"], "no finished reference run", "-", "-", "-", "-", "-")
            continue
        total, reached = r["reference_dataloader_seconds"], r["fast_seconds_to_reach"]
        share = ratio(reached, total) if reached is not None else float("nan")
        quality.add(
            r["config"],
            f"{ref.test_mse:.5f}",
            fmt(total, 0),
            "not reached" if r["crossing"] is None else f"{r['crossing']} of {r['fast_epochs']}",
            fmt(reached, 1) if reached is not None else "-",
            f"{share:.3f}" if reached is not None else "-",
            ("met" if share <= TARGET_FRACTION else "missed") if reached is not None else "missed",
        )
    sources = sorted({r["reference"].source for r in results if r["reference"]})
    measured = args.budget == "full" or args.smoke
    quality.notes = [
        f"Reference test MSE: from {', '.join(sources) or '-'}"
        + ("." if args.smoke else " (reference recipe, 100 epochs, in-memory batches, seed 0, 1 thread).")
        + " The reference's DataLoader time: 100 x the median DataLoader seconds per epoch above.",
        "Fast time to reach: "
        + (
            "the fast run of the rounds continued until its test MSE reached the reference's; the sum of its "
            "epochs' seconds."
            if measured
            else "the epoch at which the shipped fast checkpoint (same recipe and seed) reached it, from its "
            "history.csv, x this run's median fast seconds per epoch."
        ),
    ]
    return [epochs, quality]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--budget", choices=("short", "full"), default="short")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="default: all (smoke: mlp1-p2)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--reference-store", type=Path, default=REPO / "runs" / "reference")
    parser.add_argument("--store", type=Path, default=REPO / "checkpoints", help="the shipped fast checkpoints")
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: as the reference runs were trained)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.smoke else 3)
    names = args.configs or (["mlp1-p2"] if args.smoke else list(CONFIGS))
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine()
    data = load_images("mnist", args.data_dir, download=False)
    if args.smoke:
        data = data.subset(2048, 512)
    data = data.to(device)
    if args.smoke:
        check_runner_matches_fit(get_config(names[0]), data, device)
    results = [measure(name, data, args, device, reference_result(args.reference_store, name)) for name in names]
    report("train_speed", tables(results, args), info, args.out, extra=results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
