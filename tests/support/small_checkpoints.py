"""Small real checkpoints through the real writer, for the tests of the checkpoint format and store."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from models import LatentSet, build_model
from models.checkpoint import METADATA, sha256_file, write_checkpoint


def write_small(folder: Path, config_name: str = "mlp2-p8") -> None:
    """A real checkpoint through the real writer, from an untrained model."""
    torch.manual_seed(1)
    model = build_model(config_name).eval()
    images = torch.rand(64, 784)
    with torch.inference_mode():
        codes = model.encode(images)
    p = model.config.latent_size
    extra = {} if p <= 2 else {"projection_mean": codes.mean(0), "projection_components": torch.eye(2, p)}
    latents = LatentSet(codes, torch.arange(64) % 10, **extra)
    history = [{"epoch": 1, "train_mse": 0.1, "test_mse": 0.09, "seconds": 1.5}]
    metadata = {"name": config_name, "dataset": {"name": "mnist"}, "metrics": {"test_mse": 0.09}}
    write_checkpoint(folder, model, metadata, history, latents)


def rewrite_checksum(folder: Path, file: str) -> None:
    metadata = json.loads((folder / METADATA).read_text())
    metadata["files"][file] = sha256_file(folder / file)
    (folder / METADATA).write_text(json.dumps(metadata))
