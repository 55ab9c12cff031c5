"""The training loop: one shared MSE step, per-epoch evaluation, resumable, seeded."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from models import Autoencoder, AutoencoderConfig
from training.data import ImageData
from training.recipes import Recipe
from training.resume import load_state, save_state, saved_epochs

log = logging.getLogger(__name__)
CPU = torch.device("cpu")


class TrainingDiverged(RuntimeError):
    pass


class TrainingInterrupted(Exception):
    """Ctrl-C during `fit`: how far the run got, as far as its saved state goes."""

    def __init__(self, label: str, saved_epochs: int, epochs: int) -> None:
        super().__init__(f"{label}: interrupted after epoch {saved_epochs} of {epochs}")
        self.label = label
        self.saved_epochs = saved_epochs  # completed epochs whose state is on disk (0 without a state file)
        self.epochs = epochs


@dataclass
class TrainedModel:
    model: Autoencoder
    history: list[dict[str, float]]  # per epoch: epoch, train_mse, test_mse, seconds

    @property
    def train_seconds(self) -> float:
        return sum(row["seconds"] for row in self.history)


def reconstruction_loss(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel: the one step shared by training and evaluation."""
    return F.mse_loss(model(images), images)


@torch.inference_mode()
def evaluate(model: Autoencoder, images: torch.Tensor, batch_size: int = 4096) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        total += reconstruction_loss(model, batch).item() * len(batch)
    return total / len(images)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Each epoch's order depends only on (seed, epoch): a resumed run sees the same batches.
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def batches(data: ImageData, recipe: Recipe, seed: int, epoch: int, device: torch.device) -> Iterator[torch.Tensor]:
    generator = _epoch_generator(seed, epoch)
    if recipe.loader == "dataloader":
        loader = DataLoader(data.train_set, batch_size=recipe.batch_size, shuffle=True, generator=generator)
        for images, _labels in loader:
            yield images.view(len(images), -1).to(device)
        return
    images = data.train_images  # already on the device
    order = torch.randperm(len(images), generator=generator).to(device)
    for start in range(0, len(images), recipe.batch_size):
        yield images[order[start : start + recipe.batch_size]]


def scheduler_for(optimizer: torch.optim.Optimizer, recipe: Recipe, steps: int) -> LRScheduler:
    if recipe.schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=steps)
    if recipe.schedule == "constant":
        return LambdaLR(optimizer, lambda _step: 1.0)
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def _train_epoch(
    model: Autoencoder,
    optimizer: torch.optim.Optimizer,
    scheduler: LRScheduler,
    batches: Iterator[torch.Tensor],
    device: torch.device,
) -> float:
    """One optimisation pass over `batches`; their mean training MSE per image."""
    model.train()
    total, count = torch.zeros((), device=device), 0
    for images in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = reconstruction_loss(model, images)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach() * len(images)
        count += len(images)
    return total.item() / count


def fit(
    config: AutoencoderConfig,
    data: ImageData,
    recipe: Recipe,
    *,
    seed: int = 0,
    device: torch.device = CPU,
    state_path: Path | None = None,
    label: str = "",
) -> TrainedModel:
    """Train a fresh model, or continue the run saved at `state_path`. `data` is on `device`."""
    torch.manual_seed(seed)
    model = Autoencoder(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps_per_epoch = math.ceil(len(data.train_images) / recipe.batch_size)
    scheduler = scheduler_for(optimizer, recipe, recipe.epochs * steps_per_epoch)
    fingerprint: dict[str, Any] = {
        "config": config.to_dict(),
        "recipe": recipe.to_dict(),
        "seed": seed,
        "data": data.sha256,
        "train_images": len(data.train_images),
    }
    history: list[dict[str, float]] = []
    state = load_state(state_path, fingerprint) if state_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        log.info("%s: resuming after epoch %d of %d", label, len(history), recipe.epochs)

    bar = tqdm(total=recipe.epochs, initial=len(history), desc=label, disable=not sys.stderr.isatty())
    try:
        for epoch in range(len(history) + 1, recipe.epochs + 1):
            started = time.monotonic()
            train_mse = _train_epoch(model, optimizer, scheduler, batches(data, recipe, seed, epoch, device), device)
            if not math.isfinite(train_mse):
                raise TrainingDiverged(
                    f"{label}: the training loss became {train_mse} in epoch {epoch}; "
                    "stopped, nothing was published (try a lower learning rate)"
                )
            test_mse = evaluate(model, data.test_images)
            row = {"epoch": epoch, "train_mse": train_mse, "test_mse": test_mse, "seconds": time.monotonic() - started}
            history.append(row)
            if state_path:
                state = {"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "history": history}  # fmt: skip
                save_state(state_path, state)
            bar.set_postfix(train=f"{train_mse:.5f}", test=f"{test_mse:.5f}")
            bar.update()
            if bar.disable:
                log.info("%s epoch %d/%d train %.5f test %.5f (%.1f s)",
                         label, epoch, recipe.epochs, train_mse, test_mse, row["seconds"])  # fmt: skip
    except KeyboardInterrupt:
        saved = saved_epochs(state_path, fingerprint) if state_path else 0
        raise TrainingInterrupted(label, saved, recipe.epochs) from None
    finally:
        bar.close()
    return TrainedModel(model=model.eval(), history=history)
