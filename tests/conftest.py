"""Shared fixtures: the real MNIST files from ../shared/data and small real checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.data import DATA_DIR_ENV, ImageData, load_images

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get(DATA_DIR_ENV, REPO.parent / "shared" / "data"))
    assert (root / "MNIST" / "raw").is_dir(), f"MNIST expected in {root} (set {DATA_DIR_ENV})"
    return root


@pytest.fixture(scope="session")
def mnist(data_root: Path) -> ImageData:
    return load_images("mnist", data_root, download=False)


@pytest.fixture(scope="session")
def small_mnist(mnist: ImageData) -> ImageData:
    return mnist.subset(train=2048, test=512)
