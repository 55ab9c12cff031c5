"""Turning a trained model into a published checkpoint version."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from sklearn.decomposition import PCA

from models import Autoencoder, CheckpointStore, LatentSet
from models.checkpoint import write_checkpoint
from training.data import ImageData
from training.loop import TrainedModel
from training.recipes import Recipe


def latent_set(model: Autoencoder, data: ImageData) -> LatentSet:
    """The test set's codes; for p > 2 also a PCA to 2-D fitted on the training codes."""
    model.eval()
    codes = model.encode_all(data.test_images).cpu()
    labels = data.test_labels.cpu()
    if codes.shape[1] <= 2:
        return LatentSet(codes, labels)
    pca = PCA(n_components=2, svd_solver="full").fit(model.encode_all(data.train_images).cpu().numpy())
    return LatentSet(
        codes,
        labels,
        projection_mean=torch.from_numpy(pca.mean_).float(),
        projection_components=torch.from_numpy(pca.components_).float(),
    )


def checkpoint_metadata(
    name: str, config_name: str, trained: TrainedModel, data: ImageData, recipe: Recipe, seed: int, device: str
) -> dict[str, Any]:
    last = trained.history[-1]
    return {
        "name": name,
        "config": config_name,
        "dataset": {
            "name": data.name,
            "sha256": data.sha256,
            "train_images": len(data.train_images),
            "test_images": len(data.test_images),
        },
        "recipe": recipe.to_dict(),
        "seed": seed,
        "epochs": len(trained.history),
        "metrics": {"train_mse": last["train_mse"], "test_mse": last["test_mse"]},
        "timings": {
            "train_seconds": trained.train_seconds,
            "seconds_per_epoch": trained.train_seconds / len(trained.history),
            "device": device,
            "threads": torch.get_num_threads(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def publish(
    store: CheckpointStore,
    name: str,
    config_name: str,
    trained: TrainedModel,
    data: ImageData,
    recipe: Recipe,
    seed: int,
    promote: bool = False,
) -> int:
    """Publish a new version of `name` and return its number; `promote` also makes it the stable one."""
    device = str(next(trained.model.parameters()).device)
    metadata = checkpoint_metadata(name, config_name, trained, data, recipe, seed, device)
    latents = latent_set(trained.model, data)

    def write(folder: Path) -> None:
        write_checkpoint(folder, trained.model, metadata, trained.history, latents)

    return store.publish(name, write, promote=promote)
