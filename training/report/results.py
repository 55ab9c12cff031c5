"""Everything the report shows about one model or one PCA baseline, computed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models import Checkpoint
from training.data import ImageData
from training.report.metrics import CLASSES, LatentScores, LinearAutoencoder, latent_scores

SAMPLES_PER_DIGIT = 2
MANIFOLD_STEPS = 15  # a 15 x 15 grid of decoded points: digits stay legible at GitHub's page width
MANIFOLD_PERCENTILES = (1.0, 99.0)  # span the bulk of the codes, not the few outliers


@dataclass(frozen=True)
class Evaluation:
    """What a model and a PCA baseline share: reconstruction errors and latent scores."""

    label: str
    p: int
    dataset: str
    train_mse: float
    test_mse: float
    digit_mse: np.ndarray  # (CLASSES,) mean test MSE per digit
    samples: np.ndarray  # (k, 784) reconstructions of the fixed sample digits
    scores: LatentScores


Baselines = dict[tuple[str, int], Evaluation]  # PCA by (data set, p)


def baseline(baselines: Baselines, evaluation: Evaluation) -> Evaluation:
    """The PCA baseline a model is measured against: the same data set, the same p."""
    return baselines[(evaluation.dataset, evaluation.p)]


@dataclass(frozen=True)
class Manifold:
    """Decoded points on a regular grid across a 2-D latent plane, top row = highest z2."""

    images: np.ndarray  # (steps * steps, 784), row by row
    z1: np.ndarray  # (steps,) increasing
    z2: np.ndarray  # (steps,) decreasing, as the rows are drawn top to bottom


@dataclass(frozen=True)
class ModelResult:
    name: str
    version: int
    metadata: dict[str, Any]
    history: list[dict[str, float]]
    evaluation: Evaluation
    map_points: np.ndarray  # (N, 2) test codes on the stored 2-D map
    map_labels: np.ndarray  # (N,)
    manifold: Manifold | None  # only for p = 2


def sample_indices(labels: np.ndarray, per_digit: int = SAMPLES_PER_DIGIT) -> np.ndarray:
    """The first `per_digit` test images of each digit, in digit order: the same for every model."""
    return np.concatenate([np.flatnonzero(labels == digit)[:per_digit] for digit in range(CLASSES)])


def digit_mse(reconstructions: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    per_image = ((reconstructions - images) ** 2).mean(axis=1)
    return np.array([per_image[labels == d].mean() if np.any(labels == d) else np.nan for d in range(CLASSES)])


def _manifold(checkpoint: Checkpoint, codes: np.ndarray) -> Manifold:
    low, high = np.percentile(codes, MANIFOLD_PERCENTILES, axis=0)
    z1 = np.linspace(low[0], high[0], MANIFOLD_STEPS)
    z2 = np.linspace(high[1], low[1], MANIFOLD_STEPS)
    grid = np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2).astype(np.float32)
    images = checkpoint.model.decode_all(torch.from_numpy(grid)).numpy()
    return Manifold(images=images, z1=z1, z2=z2)


def evaluate_model(checkpoint: Checkpoint, data: ImageData) -> ModelResult:
    """Encode the training and test images with the model and score its codes."""
    model = checkpoint.model.cpu().eval()
    train_codes = model.encode_all(data.train_images.cpu())
    test_images = data.test_images.cpu()
    test_codes = model.encode_all(test_images)
    reconstructions = model.decode_all(test_codes).numpy()
    labels = data.test_labels.numpy()
    metrics = checkpoint.metadata["metrics"]
    evaluation = Evaluation(
        label=checkpoint.name,
        p=model.config.latent_size,
        dataset=data.name,
        train_mse=float(metrics["train_mse"]),
        test_mse=float(metrics["test_mse"]),
        digit_mse=digit_mse(reconstructions, test_images.numpy(), labels),
        samples=reconstructions[sample_indices(labels)],
        scores=latent_scores(train_codes.numpy(), data.train_labels.numpy(), test_codes.numpy(), labels),
    )
    # The map uses the projection stored with the checkpoint: the same one the service draws with.
    return ModelResult(
        name=checkpoint.name,
        version=checkpoint.version,
        metadata=checkpoint.metadata,
        history=checkpoint.history,
        evaluation=evaluation,
        map_points=checkpoint.latents.to_map(test_codes).numpy(),
        map_labels=labels,
        manifold=_manifold(checkpoint, test_codes.numpy()) if evaluation.p == 2 else None,
    )


def evaluate_linear(linear: LinearAutoencoder, data: ImageData) -> Evaluation:
    """The PCA baseline scored exactly like a model, on the same images."""
    train_images, test_images = data.train_images.cpu().numpy(), data.test_images.cpu().numpy()
    train_codes, test_codes = linear.encode(train_images), linear.encode(test_images)
    train_reconstructions = linear.decode(train_codes)
    reconstructions = linear.decode(test_codes)
    labels = data.test_labels.numpy()
    return Evaluation(
        label=f"PCA p = {linear.p}",
        p=linear.p,
        dataset=data.name,
        train_mse=float(((train_reconstructions - train_images) ** 2).mean()),
        test_mse=float(((reconstructions - test_images) ** 2).mean()),
        digit_mse=digit_mse(reconstructions, test_images, labels),
        samples=reconstructions[sample_indices(labels)],
        scores=latent_scores(train_codes, data.train_labels.numpy(), test_codes, labels),
    )
